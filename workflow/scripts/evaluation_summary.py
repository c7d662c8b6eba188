"""Rule evaluation_summary: every layer's evaluation with the halves' facets, and the per-layer summary (neurofacets.evaluation.evaluation_summary)."""

from neurofacets.evaluation import evaluation_summary
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    evaluation_summary(
        list(snakemake.input.tables),  # noqa: F821
        list(snakemake.params.layers),  # noqa: F821
        snakemake.params.facet_threshold,  # noqa: F821
        snakemake.params.run,  # noqa: F821
        all_layers_csv=snakemake.output.all_layers,  # noqa: F821
        summary_csv=snakemake.output.summary,  # noqa: F821
    )
