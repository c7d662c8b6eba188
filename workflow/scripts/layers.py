from neurofacets.layer_geometry_cache import write_layers_table_kept
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    write_layers_table_kept(
        snakemake.params.arch,
        snakemake.params.layers,
        snakemake.params.image_size,
        snakemake.output[0],
        code=snakemake.params.code,
    )
