from neurofacets.logs import log_to
from neurofacets.probes import write_probe_dataset

with log_to(snakemake.log[0]):
    write_probe_dataset(
        snakemake.output[0],
        images_per_class=snakemake.params.images_per_class,
        size=snakemake.params.size,
        seed=snakemake.params.seed,
    )
