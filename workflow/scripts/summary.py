"""Rule summary: the run's headline numbers per layer (neurofacets.summary.write_summary)."""

from neurofacets.logs import log_to
from neurofacets.summary import write_summary

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    write_summary(
        metrics_csv=snakemake.input.metrics,  # noqa: F821
        similarity_summary_csv=snakemake.input.similarity_summary,  # noqa: F821
        layers_csv=snakemake.input.layers,  # noqa: F821
        output=snakemake.output[0],  # noqa: F821
        run=snakemake.params.run,  # noqa: F821
        preprocessing=snakemake.params.preprocessing,  # noqa: F821
    )
