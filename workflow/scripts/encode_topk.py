"""Rule encode_topk: one layer's top-k images and CoF counts (neurofacets.encode.encode_layer)."""

from neurofacets.encode import encode_layer
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    encode_layer(
        shard_paths=list(snakemake.input.shards),  # noqa: F821
        images_csv=snakemake.input.images,  # noqa: F821
        classes_csv=snakemake.input.classes,  # noqa: F821
        layer=snakemake.wildcards.layer,  # noqa: F821
        top_k=snakemake.params.top_k,  # noqa: F821
        topk_path=snakemake.output.topk,  # noqa: F821
        cof_path=snakemake.output.cof,  # noqa: F821
        config=snakemake.config,  # noqa: F821
    )
