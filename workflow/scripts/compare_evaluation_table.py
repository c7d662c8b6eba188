"""Rule compare_evaluation_table: the runs' evaluation summaries stacked (neurofacets.figures.evaluation)."""

from neurofacets.evaluation import stack_evaluation_summaries
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    stack_evaluation_summaries(list(snakemake.input.summaries), snakemake.output[0])  # noqa: F821
