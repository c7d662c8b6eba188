"""Rule evaluation_summary: every layer's evaluation with the halves' facets, and the per-layer summary (neurofacets.evaluation.evaluation_summary)."""

from neurofacets.evaluation import evaluation_summary
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    evaluation_summary(
        list(snakemake.input.tables),
        list(snakemake.params.layers),
        snakemake.params.facet_threshold,
        snakemake.params.run,
        all_layers_csv=snakemake.output.all_layers,
        summary_csv=snakemake.output.summary,
        draws_csv=snakemake.input.draws,
    )
