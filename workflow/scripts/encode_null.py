"""Rule encode_null: one layer's statistics under label permutation (neurofacets.encode.layer_null)."""

from neurofacets.encode import layer_null
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    layer_null(
        shard_paths=list(snakemake.input.shards),
        topk_path=snakemake.input.topk,
        images_csv=snakemake.input.images,
        classes_csv=snakemake.input.classes,
        level=snakemake.params.level,
        n_permutations=snakemake.params.permutations,
        seed=snakemake.params.seed,
        out_csv=snakemake.output[0],
    )
