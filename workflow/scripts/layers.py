from neurofacets.logs import log_to
from neurofacets.models import write_layers_table

with log_to(snakemake.log[0]):
    write_layers_table(
        snakemake.params.arch, snakemake.params.layers, snakemake.params.image_size, snakemake.output[0]
    )
