"""Rule encode_null_summary: observed vs permuted statistics per layer (neurofacets.encode.null_summary)."""

from neurofacets.encode import null_summary
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    null_summary(
        null_csvs=list(snakemake.input.null),
        layers=list(snakemake.params.layers),
        out_csv=snakemake.output[0],
    )
