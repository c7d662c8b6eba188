"""Checkpoint semantics_hierarchy: the dataset's classes on the hierarchy (neurofacets.semantics.stage.link_hierarchy)."""

from neurofacets.logs import log_to
from neurofacets.semantics.stage import link_hierarchy

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    link_hierarchy(
        classes_csv=snakemake.input.classes,  # noqa: F821
        source=snakemake.params.source,  # noqa: F821
        out_csv=snakemake.output[0],  # noqa: F821
    )
