"""Checkpoint runs_semantics: which runs have a class hierarchy (neurofacets.semantics.stage.runs_with_hierarchy)."""

from neurofacets.logs import log_to
from neurofacets.semantics.stage import runs_with_hierarchy

with log_to(snakemake.log[0]):
    runs_with_hierarchy(list(snakemake.input), snakemake.params.runs, snakemake.output[0])
