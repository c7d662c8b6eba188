from neurofacets.extract import extract_shard
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    extract_shard(
        snakemake.params.config,
        snakemake.input.images,
        snakemake.params.shard,
        snakemake.input.weights,
        snakemake.output[0],
        threads=snakemake.threads,
        workers=snakemake.config["extraction"]["workers"],
    )
