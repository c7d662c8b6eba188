"""Rule encode_statistics: one layer's metrics, similarity, class RDM and null model
(neurofacets.encode.layer_statistics)."""

from neurofacets.encode import layer_statistics
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    layer_statistics(
        list(snakemake.input.shards),
        snakemake.input.cof,
        snakemake.input.topk,
        snakemake.input.images,
        snakemake.input.classes,
        snakemake.wildcards.layer,
        level=snakemake.params.level,
        n_permutations=int(snakemake.params.permutations),
        seed=int(snakemake.params.seed),
        metrics_csv=snakemake.output.metrics,
        similarity_path=snakemake.output.similarity,
        rdm_path=snakemake.output.rdm,
        null_csv=snakemake.output.null,
        provenance=snakemake.params.provenance,
    )
