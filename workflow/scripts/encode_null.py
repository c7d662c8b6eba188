"""Rule encode_null: one layer's statistics under label permutation (neurofacets.encode.layer_null)."""

from neurofacets.encode import layer_null
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    layer_null(
        topk_path=snakemake.input.topk,  # noqa: F821
        images_csv=snakemake.input.images,  # noqa: F821
        classes_csv=snakemake.input.classes,  # noqa: F821
        level=snakemake.params.level,  # noqa: F821
        n_permutations=snakemake.params.permutations,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        out_csv=snakemake.output[0],  # noqa: F821
    )
