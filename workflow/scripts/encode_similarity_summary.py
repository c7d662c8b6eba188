"""Rule encode_similarity_summary: mean similarity per layer (neurofacets.encode.similarity_summary)."""

from neurofacets.encode import similarity_summary
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    similarity_summary(
        similarity_paths=list(snakemake.input.similarity),
        layers=list(snakemake.params.layers),
        out_csv=snakemake.output[0],
    )
