"""Rule encode_metrics: one layer's per-neuron metrics (neurofacets.encode.layer_metrics)."""

from neurofacets.encode import layer_metrics
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    layer_metrics(
        cof_path=snakemake.input.cof,  # noqa: F821
        layer=snakemake.wildcards.layer,  # noqa: F821
        level=snakemake.params.level,  # noqa: F821
        out_csv=snakemake.output[0],  # noqa: F821
    )
