"""Rule encode_rsa: layer x layer RSA of the class RDMs (neurofacets.encode.layer_rsa)."""

from neurofacets.encode import layer_rsa
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    layer_rsa(
        rdm_paths=list(snakemake.input.rdms),
        layers=list(snakemake.params.layers),
        out_csv=snakemake.output[0],
    )
