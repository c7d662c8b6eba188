"""Rule evaluate_layer: one layer's held-out scores, split halves and selectivity test (neurofacets.evaluation.evaluate_layer)."""

from neurofacets.evaluation import evaluate_layer
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    evaluate_layer(
        list(snakemake.input.shards),
        snakemake.input.topk,
        snakemake.input.images,
        snakemake.input.classes,
        next(iter(snakemake.input.hierarchy), None),  # none without a hierarchy
        level=snakemake.params.level,
        top_k=int(snakemake.params.top_k),
        seed=int(snakemake.params.seed),
        chance_draws=int(snakemake.params.chance_draws),
        label_draws=snakemake.params.label_draws,
        permutations=int(snakemake.params.permutations),
        share=float(snakemake.params.share),
        max_concept_classes=float(snakemake.params.max_concept_classes),
        out_csv=snakemake.output[0],
    )
