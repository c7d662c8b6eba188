"""Rule patches: the layer's top-k list -> its receptive-field patch store."""

from neurofacets.logs import log_to
from neurofacets.patches import build_patches

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        build_patches(
            snakemake.input.topk,
            snakemake.input.layers,
            snakemake.input.images,
            snakemake.wildcards.layer,
            snakemake.output[0],
            image_size=snakemake.params.image_size,
            resize=snakemake.params.resize,
            interpolation=snakemake.params.interpolation,
            crop_offset=snakemake.params.crop_offset,
            threads=snakemake.threads,
            provenance=snakemake.params.provenance,
        )
