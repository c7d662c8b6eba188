"""Rule semantics_layer: one layer's concepts, spreads and null (neurofacets.semantics.stage.layer_semantics)."""

from neurofacets.logs import log_to
from neurofacets.semantics.stage import layer_semantics

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    layer_semantics(
        snakemake.input.topk,  # noqa: F821
        snakemake.input.images,  # noqa: F821
        snakemake.input.classes,  # noqa: F821
        snakemake.input.hierarchy,  # noqa: F821
        share=float(snakemake.params.share),  # noqa: F821
        max_concept_classes=float(snakemake.params.max_concept_classes),  # noqa: F821
        levels=[int(d) for d in snakemake.params.levels],  # noqa: F821
        draws=int(snakemake.params.draws),  # noqa: F821
        permutations=int(snakemake.params.permutations),  # noqa: F821
        seed=int(snakemake.params.seed),  # noqa: F821
        out_csv=snakemake.output.table,  # noqa: F821
        null_csv=snakemake.output.null,  # noqa: F821
    )
