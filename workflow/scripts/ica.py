"""Rule ica: the layer's patch store -> the independent components of every neuron."""

from neurofacets.ica import FitSettings, build_ica
from neurofacets.logs import log_to

# The guard matters: the worker processes are spawned and re-import this file.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):  # noqa: F821 (snakemake is injected by Snakemake)
        build_ica(
            snakemake.input.patches,  # noqa: F821
            snakemake.output[0],  # noqa: F821
            FitSettings(**snakemake.params.settings),  # noqa: F821
            workers=snakemake.threads,  # noqa: F821
            config=snakemake.config,  # noqa: F821
        )
