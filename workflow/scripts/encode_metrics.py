"""Rule encode_metrics: one layer's per-neuron metrics (neurofacets.encode.layer_metrics)."""

from neurofacets.encode import layer_metrics
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    layer_metrics(
        cof_path=snakemake.input.cof,
        layer=snakemake.wildcards.layer,
        level=snakemake.params.level,
        out_csv=snakemake.output[0],
    )
