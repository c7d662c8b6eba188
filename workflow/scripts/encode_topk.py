"""Rule encode_topk: one layer's top-k images and CoF counts (neurofacets.encode.encode_layer)."""

from neurofacets.encode import encode_layer
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    encode_layer(
        shard_paths=list(snakemake.input.shards),
        images_csv=snakemake.input.images,
        classes_csv=snakemake.input.classes,
        layer=snakemake.wildcards.layer,
        top_k=snakemake.params.top_k,
        topk_path=snakemake.output.topk,
        cof_path=snakemake.output.cof,
        provenance=snakemake.params.provenance,
    )
