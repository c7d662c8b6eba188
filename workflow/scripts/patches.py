"""Rule patches: the layer's top-k list -> its receptive-field patch store."""

from neurofacets.logs import log_to
from neurofacets.patches import build_patches

if __name__ == "__main__":
    with log_to(snakemake.log[0]):  # noqa: F821 (snakemake is injected by Snakemake)
        build_patches(
            snakemake.input.topk,  # noqa: F821
            snakemake.input.layers,  # noqa: F821
            snakemake.input.images,  # noqa: F821
            snakemake.wildcards.layer,  # noqa: F821
            snakemake.output[0],  # noqa: F821
            image_size=snakemake.params.image_size,  # noqa: F821
            resize=snakemake.params.resize,  # noqa: F821
            threads=snakemake.threads,  # noqa: F821
            config=snakemake.config,  # noqa: F821
        )
