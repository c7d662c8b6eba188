"""Rule semantics_layer: one layer's concepts, spreads and null (neurofacets.semantics.stage.layer_semantics)."""

from neurofacets.logs import log_to
from neurofacets.semantics.stage import layer_semantics

with log_to(snakemake.log[0]):
    layer_semantics(
        list(snakemake.input.shards),
        snakemake.input.topk,
        snakemake.input.images,
        snakemake.input.classes,
        snakemake.input.hierarchy,
        share=float(snakemake.params.share),
        max_concept_classes=float(snakemake.params.max_concept_classes),
        levels=[int(d) for d in snakemake.params.levels],
        draws=int(snakemake.params.draws),
        permutations=int(snakemake.params.permutations),
        seed=int(snakemake.params.seed),
        out_csv=snakemake.output.table,
        null_csv=snakemake.output.null,
    )
