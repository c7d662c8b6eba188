"""Rules encode_similarity and encode_rdm: one layer's store computed from its CoF alone
(neurofacets.encode.COF_STORES: layer_similarity, layer_rdm)."""

from neurofacets.encode import COF_STORES
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    COF_STORES[snakemake.params.store](
        cof_path=snakemake.input.cof,
        layer=snakemake.wildcards.layer,
        level=snakemake.params.level,
        out_path=snakemake.output[0],
        images_csv=snakemake.input.images,
        provenance=snakemake.params.provenance,
    )
