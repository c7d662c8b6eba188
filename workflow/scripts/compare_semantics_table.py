"""Rule compare_semantics_table: the runs' semantics summaries stacked (neurofacets.semantics.stage)."""

from neurofacets.logs import log_to
from neurofacets.semantics.stage import stack_semantics_summaries

with log_to(snakemake.log[0]):
    stack_semantics_summaries(list(snakemake.input.summaries), snakemake.output[0])
