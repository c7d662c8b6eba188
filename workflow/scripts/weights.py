from neurofacets.logs import log_to
from neurofacets.weights import prepare_weights

with log_to(snakemake.log[0]) as log:
    weights_id = prepare_weights(
        snakemake.params.source,
        snakemake.params.arch,
        snakemake.output[0],
        layers=snakemake.params.layers,
        image_size=snakemake.params.image_size,
        partial_weights=snakemake.params.partial_weights,
    )
    log.info("weights: %s", weights_id)
