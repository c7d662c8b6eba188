"""Rules fig*/app*/compare_runs: draw one figure (neurofacets.figures.build_figure)."""

from neurofacets.figures import build_figure
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    build_figure(
        stem=snakemake.params.stem,  # noqa: F821
        inputs={name: value for name, value in snakemake.input.items()},  # noqa: F821
        outputs=list(snakemake.output),  # noqa: F821
        dpi=int(snakemake.params.dpi),  # noqa: F821
        options=dict(snakemake.params.options),  # noqa: F821
    )
