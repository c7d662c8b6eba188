"""Rule bootstrap_layer: one layer's per-neuron metrics under every resample (neurofacets.bootstrap.bootstrap_layer)."""

from neurofacets.bootstrap import bootstrap_layer
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    bootstrap_layer(
        list(snakemake.input.shards),
        snakemake.input.images,
        snakemake.input.classes,
        snakemake.wildcards.layer,
        level=snakemake.params.level,
        top_k=int(snakemake.params.top_k),
        seed=int(snakemake.params.seed),
        split_seed=int(snakemake.params.split_seed),
        resamples=int(snakemake.params.resamples),
        out=snakemake.output[0],
        provenance=snakemake.params.provenance,
    )
