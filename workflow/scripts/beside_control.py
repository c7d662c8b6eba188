"""Rule beside_control: each run's headline numbers beside its untrained control's (neurofacets.beside_control)."""

from neurofacets.beside_control import write_beside_control
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    write_beside_control(
        dict(snakemake.params.pairs),
        list(snakemake.input.summaries),
        list(snakemake.input.evaluation_summaries),
        list(snakemake.input.draws),
        snakemake.output[0],
    )
