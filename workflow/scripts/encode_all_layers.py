"""Rule encode_all_layers: metrics of all layers + mf_norm + facets (neurofacets.encode.all_layer_metrics)."""

from neurofacets.encode import all_layer_metrics
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    all_layer_metrics(
        metrics_csvs=list(snakemake.input.metrics),
        layers=list(snakemake.params.layers),
        facet_threshold=snakemake.params.facet_threshold,
        out_csv=snakemake.output[0],
    )
