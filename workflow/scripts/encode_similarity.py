"""Rule encode_similarity: one layer's neuron similarity matrices (neurofacets.encode.layer_similarity)."""

from neurofacets.encode import layer_similarity
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    layer_similarity(
        cof_path=snakemake.input.cof,  # noqa: F821
        layer=snakemake.wildcards.layer,  # noqa: F821
        level=snakemake.params.level,  # noqa: F821
        out_path=snakemake.output[0],  # noqa: F821
        images_csv=snakemake.input.images,  # noqa: F821
        config=snakemake.config,  # noqa: F821
    )
