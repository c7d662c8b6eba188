"""Rule summary: the run's headline numbers per layer (neurofacets.summary.write_summary)."""

from neurofacets.logs import log_to
from neurofacets.summary import write_summary

with log_to(snakemake.log[0]):
    write_summary(
        metrics_csv=snakemake.input.metrics,
        similarity_summary_csv=snakemake.input.similarity_summary,
        layers_csv=snakemake.input.layers,
        output=snakemake.output[0],
        run=snakemake.params.run,
        preprocessing=snakemake.params.preprocessing,
        images_csv=snakemake.input.images,
        dataset_skipped_csv=snakemake.input.dataset_skipped,
        extraction_skipped_csv=snakemake.input.extraction_skipped,
        draws_csv=snakemake.input.draws,
    )
