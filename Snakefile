# neurofacets: which classes of images excite each neuron of an image network.
# This file only wires: config, validation, and the stages in rules/.
from snakemake.utils import min_version

from neurofacets.config import validate_config

min_version("9.0")


configfile: "config/config.yaml"


# also reads the text that nested `--config key={...}` values arrive as (numbers, booleans),
# and gives every key the config leaves out its schema default: the rules index config directly
validate_config(config)


if config["runs"]:

    # Several runs in one call (e.g. config/controls.yaml): this Snakefile once per run
    # as a module, and the figures comparing the runs.
    include: "rules/runs.smk"

else:

    include: "rules/common.smk"
    include: "rules/dataset.smk"
    include: "rules/extract.smk"
    include: "rules/encode.smk"
    include: "rules/visualize.smk"
    include: "rules/figures.smk"
    include: "rules/semantics.smk"
    include: "rules/evaluation.smk"
    include: "rules/bootstrap.smk"
    include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
