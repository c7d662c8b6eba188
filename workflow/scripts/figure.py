"""Rules fig*/app*/compare_runs: draw one figure (neurofacets.figures.build_figure)."""

from neurofacets.figures import build_figure
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    build_figure(
        stem=snakemake.params.stem,
        inputs={name: value for name, value in snakemake.input.items()},
        outputs=list(snakemake.output),
        dpi=int(snakemake.params.dpi),
        options=dict(snakemake.params.options),
    )
