"""Rule semantics_summary: per-layer summary and the concepts table (neurofacets.semantics.stage.semantics_summary)."""

from neurofacets.logs import log_to
from neurofacets.semantics.stage import semantics_summary

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    semantics_summary(
        list(snakemake.input.tables),  # noqa: F821
        list(snakemake.input.nulls),  # noqa: F821
        snakemake.input.layers,  # noqa: F821
        snakemake.input.images,  # noqa: F821
        snakemake.input.classes,  # noqa: F821
        snakemake.input.hierarchy,  # noqa: F821
        run=snakemake.params.run,  # noqa: F821
        out_summary=snakemake.output.summary,  # noqa: F821
        out_concepts=snakemake.output.concepts,  # noqa: F821
    )
