"""Rule figure_tables: Tables 2 and 3, top SF and MF neurons per layer (neurofacets.figures.write_tables)."""

from neurofacets.figures import write_tables
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    write_tables(
        metrics_csv=snakemake.input.metrics,
        layers_csv=snakemake.input.layers,
        sf_output=snakemake.output.sf,
        mf_output=snakemake.output.mf,
        per_layer=int(snakemake.params.per_layer),
    )
