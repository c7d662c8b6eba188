from neurofacets.dataset_state import write_dataset_state
from neurofacets.datasets import dataset_from_config
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    # first, so that the log shows the state of the files even when listing them fails
    write_dataset_state(snakemake.params.state, snakemake.output.state)
    dataset_from_config(
        {
            "dataset": snakemake.params.dataset,
            "extraction": snakemake.params.extraction,
            "analysis": {"level": snakemake.params.level},
        },
        probes_dir=snakemake.input.get("probes"),
        images_csv=snakemake.output.images,
        classes_csv=snakemake.output.classes,
        skipped_csv=snakemake.output.skipped,
    )
