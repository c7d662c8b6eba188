"""Rule encode_null_summary: observed vs permuted statistics per layer (neurofacets.encode.null_summary)."""

from neurofacets.encode import null_summary
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    null_summary(
        null_csvs=list(snakemake.input.null),  # noqa: F821
        layers=list(snakemake.params.layers),  # noqa: F821
        out_csv=snakemake.output[0],  # noqa: F821
    )
