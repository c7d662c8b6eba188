from neurofacets.store import write_skipped_table
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    write_skipped_table(snakemake.input, snakemake.output[0])
