"""Rule evaluate_layer: one layer's held-out scores, split halves and selectivity test (neurofacets.evaluation.evaluate_layer)."""

from neurofacets.evaluation import evaluate_layer
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    evaluate_layer(
        list(snakemake.input.shards),  # noqa: F821
        snakemake.input.topk,  # noqa: F821
        snakemake.input.images,  # noqa: F821
        snakemake.input.classes,  # noqa: F821
        next(iter(snakemake.input.hierarchy), None),  # noqa: F821 (none without a hierarchy)
        level=snakemake.params.level,  # noqa: F821
        top_k=int(snakemake.params.top_k),  # noqa: F821
        seed=int(snakemake.params.seed),  # noqa: F821
        chance_draws=int(snakemake.params.chance_draws),  # noqa: F821
        permutations=int(snakemake.params.permutations),  # noqa: F821
        share=float(snakemake.params.share),  # noqa: F821
        max_concept_classes=float(snakemake.params.max_concept_classes),  # noqa: F821
        out_csv=snakemake.output[0],  # noqa: F821
    )
