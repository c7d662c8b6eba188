# Helpers of the multi-run wiring (rules/runs.smk): rule names and files of each run, and
# what the call builds.
import re

from neurofacets.config import SCHEMA_PATH, run_configs
from neurofacets.controls import control_pairs
from neurofacets.figure_table import (
    COMPARISON_FIGURES,
    FIGURES_BY_STEM,
    RUN_FIGURES,
    RUN_OUT,
    fill_pattern,
    pattern_fields,
)


include: "code_digest.smk"


# each run merged, validated (with the defaults of what no one sets) and checked, errors
# naming the run (runs[i] (name): ...)
RUNS = run_configs(config, SCHEMA_PATH, check=True)
# {run: its untrained control} (neurofacets.controls; docs/controls.md)
CONTROLS = control_pairs(config["runs"], RUNS)
COMPARE = f"results/{config['run']}"
RUNS_BUILD = config["runs_build"]
COMPARE_FORMATS = config["figures"]["format"]


def rule_prefix(run):
    """The prefix of a run's renamed rules, e.g. vgg16_random__ (non-word characters become '_')."""
    return re.sub(r"\W", "_", run) + "__"


def run_output(run, rule, name=None):
    """A file of one run, taken from its (renamed) rule's outputs."""
    output = getattr(rules, rule_prefix(run) + rule).output
    return str(output[name] if name else output[0])


def run_outputs(run, rule):
    """Every output file of one run's rule."""
    return [str(path) for path in getattr(rules, rule_prefix(run) + rule).output]


def runs_with_semantics():
    """The runs that have a class hierarchy (once checkpoint runs_semantics ran)."""
    from neurofacets.semantics.checkpoint import read_runs_with_hierarchy

    return read_runs_with_hierarchy(checkpoints.runs_semantics.get().output[0])


def semantics_summaries(wildcards):
    """semantics/summary.csv of every run that has a class hierarchy."""
    return [run_output(run, "semantics_summary", "summary") for run in runs_with_semantics()]


def run_folder(run):
    """A run's results folder (the OUT of its module)."""
    return f"results/{run}"


def comparison_inputs(figure):
    """A comparison figure's inputs: its per-run inputs over every run or, for a figure that
    needs a class hierarchy, over the runs that have one (known once checkpoint
    runs_semantics ran, so those inputs are input functions)."""
    if not figure.needs_hierarchy:
        return figure.input_paths(COMPARE, run_outs=[run_folder(run) for run in RUNS])

    def over_runs_with_semantics(pattern):
        return lambda wildcards: fill_pattern(
            pattern, COMPARE, run_outs=[run_folder(run) for run in runs_with_semantics()]
        )

    return {
        name: (
            over_runs_with_semantics(pattern) if RUN_OUT in pattern_fields(pattern) else fill_pattern(pattern, COMPARE)
        )
        for name, pattern in figure.inputs.items()
    }


def comparison_figure_outputs(needs_hierarchy):
    """The files of the figures comparing the runs that need (or do not need) a class hierarchy
    (a figure beside the controls only when a run has one)."""
    return [
        path
        for figure in COMPARISON_FIGURES
        if figure.needs_hierarchy == needs_hierarchy and (CONTROLS or not figure.needs_control)
        for path in figure.outputs(COMPARE, COMPARE_FORMATS)
    ]


def produced_output(path):
    """Whether a rule of the workflow writes `path` (a file some settings of a run do not build)."""
    return any(path in map(str, rule.output) for rule in workflow.rules)


def bootstrap_draws(runs):
    """The runs' bootstrap/summary_draws.csv that their modules build (none with the bootstrap off)."""
    paths = [f"{run_folder(run)}/bootstrap/summary_draws.csv" for run in runs]
    return [path for path in paths if produced_output(path)]


def controlled_runs():
    """The runs that have a control and their controls, each once, in the order of `runs`."""
    paired = {*CONTROLS, *CONTROLS.values()}
    return [run for run in RUNS if run in paired]


def semantics_comparison(wildcards):
    """The semantic comparison and each such run's own semantic figures, when any run has a hierarchy."""
    runs = runs_with_semantics()
    if not runs:
        return []
    return [
        *comparison_figure_outputs(needs_hierarchy=True),
        f"{COMPARE}/tables/compare_semantics.csv",
        *[
            path
            for run in runs
            for figure in RUN_FIGURES
            if figure.needs_hierarchy
            for path in run_outputs(run, figure.stem)
        ],
        *[run_output(run, "semantics_summary", "concepts") for run in runs],
    ]


def evaluation_comparison():
    """The evaluation's comparison table, and each run's evaluation tables and figure: built under
    runs_build: compare too (the comparison reads the runs' evaluation summaries)."""
    return [
        f"{COMPARE}/tables/compare_evaluation.csv",
        *([f"{COMPARE}/tables/beside_control.csv"] if CONTROLS else []),
        *[path for run in RUNS for path in (*run_outputs(run, "evaluation_summary"), *run_outputs(run, "evaluation"))],
    ]


def all_targets():
    """The comparison, plus every run's complete outputs (runs_build: all) or only what
    the comparison reads (runs_build: compare: no patches, ICA or gallery)."""
    targets = [
        *comparison_figure_outputs(needs_hierarchy=False),
        *evaluation_comparison(),
        # a file target too, not only read through the checkpoint: so that a run whose
        # hierarchy is rebuilt updates it before the comparison reads it
        f"{COMPARE}/semantics/runs.csv",
        semantics_comparison,
    ]
    if RUNS_BUILD == "all":
        for run in RUNS:
            targets += list(getattr(rules, rule_prefix(run) + "all").input)
    return targets
