"""Rule figure_tables: Tables 2 and 3, top SF and MF neurons per layer (neurofacets.figures.write_tables)."""

from neurofacets.figures import write_tables
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    write_tables(
        metrics_csv=snakemake.input.metrics,  # noqa: F821
        layers_csv=snakemake.input.layers,  # noqa: F821
        sf_output=snakemake.output.sf,  # noqa: F821
        mf_output=snakemake.output.mf,  # noqa: F821
        per_layer=int(snakemake.params.per_layer),  # noqa: F821
    )
