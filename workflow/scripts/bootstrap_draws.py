"""Rule bootstrap_draws: every resample's headline numbers per layer (neurofacets.bootstrap.write_draws)."""

from neurofacets.bootstrap import write_draws
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    write_draws(
        list(snakemake.input.stores),
        list(snakemake.params.layers),
        snakemake.params.facet_threshold,
        snakemake.params.run,
        out_csv=snakemake.output[0],
    )
