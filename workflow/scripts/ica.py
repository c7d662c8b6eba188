"""Rule ica: the layer's patch store -> the independent components of every neuron."""

from neurofacets.ica import FitSettings, build_ica
from neurofacets.logs import log_to

# The guard matters: the worker processes are spawned and re-import this file.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        build_ica(
            snakemake.input.patches,
            snakemake.output[0],
            FitSettings(**snakemake.params.settings),
            workers=snakemake.threads,
            provenance=snakemake.params.provenance,
        )
