"""Rule compare_evaluation_table: the runs' evaluation summaries stacked (neurofacets.figures.evaluation)."""

from neurofacets.evaluation import stack_evaluation_summaries
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    stack_evaluation_summaries(list(snakemake.input.summaries), snakemake.output[0])
