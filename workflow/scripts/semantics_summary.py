"""Rule semantics_summary: per-layer summary and the concepts table (neurofacets.semantics.stage.semantics_summary)."""

from neurofacets.logs import log_to
from neurofacets.semantics.stage import semantics_summary

with log_to(snakemake.log[0]):
    semantics_summary(
        list(snakemake.input.tables),
        list(snakemake.input.nulls),
        snakemake.input.layers,
        snakemake.input.images,
        snakemake.input.classes,
        snakemake.input.hierarchy,
        run=snakemake.params.run,
        out_summary=snakemake.output.summary,
        out_concepts=snakemake.output.concepts,
    )
