"""Checkpoint semantics_hierarchy: the dataset's classes on the hierarchy (neurofacets.semantics.stage.link_hierarchy)."""

from neurofacets.logs import log_to
from neurofacets.semantics.stage import link_hierarchy

with log_to(snakemake.log[0]):
    link_hierarchy(
        classes_csv=snakemake.input.classes,
        source=snakemake.params.source,
        out_csv=snakemake.output[0],
    )
