"""Rule encode_similarity_summary: mean similarity per layer (neurofacets.encode.similarity_summary)."""

from neurofacets.encode import similarity_summary
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    similarity_summary(
        similarity_paths=list(snakemake.input.similarity),  # noqa: F821
        layers=list(snakemake.params.layers),  # noqa: F821
        out_csv=snakemake.output[0],  # noqa: F821
    )
