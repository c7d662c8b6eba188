"""The table of figures: one entry per figure drives its rule, its report entry and its drawing.

`FIGURE_TABLE` lists every figure the workflow draws. From it

- ``rules/figures.smk`` (a run's figures), ``rules/report.smk`` (``compare_runs`` against the
  runs config ``compare_runs`` lists) and ``rules/runs.smk`` (the figures comparing the runs of a
  multi-run config) make one rule per figure, named by its stem, through the one template in
  ``rules/figure_rule.smk``;
- the report (``snakemake --report``) shows each figure under its category and subcategory with
  the caption ``workflow/report/<stem>.rst``;
- `neurofacets.figures.FIGURES` pairs each entry with its drawing function, reading the
  inputs named here.

Adding a figure is one entry here, its drawing function in `neurofacets.figures` and its
caption file; ``tests/test_figure_table.py`` checks that the rules, the captions and the
drawing registry agree with this table.

Input paths are patterns the rules fill in:

``{OUT}``
    the folder of the run the figure belongs to, ``results/<run>`` (for a figure comparing
    runs, the folder of the comparing run);
``{layer}``
    one file per analysed layer: the input is the list over the run's layers;
``{RUN_OUT}``
    one file per compared run, ``{RUN_OUT}`` being that run's folder: the input is the list
    over the runs. A figure with such an input compares runs ([`Figure.compares_runs`][]).

This module is imported while Snakemake parses the workflow (on a cluster, by every job):
it holds plain data and imports nothing heavy (no matplotlib, pandas or torch).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

# Report categories, in the order the report lists them (figures, tables and the run summary).
CAT_ENCODE = "1. Conceptual encoding: sparsity, flatness, MF degree"
CAT_VISUALIZE = "2. Neuron visualisation: independent components"
CAT_SIMILARITY = "3. Neuronal similarity"
CAT_SUMMARY = "4. Run summary"
#: The subcategory of a run's evaluation (held-out scores, split halves, selectivity) under
#: `CAT_ENCODE`, beside ``evaluation/summary.csv`` (rules/evaluation.smk).
SUB_EVALUATION = "Evaluation"

#: The placeholders an input pattern may hold (see the module docstring).
OUT, LAYER, RUN_OUT = "OUT", "layer", "RUN_OUT"

#: Where a figure's caption lives, relative to the repository root.
CAPTION_PATTERN = "workflow/report/{stem}.rst"

#: The formats the report embeds, best first: the first one a run writes is shown.
REPORT_FORMATS = ("png", "svg", "pdf")

_STEM = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def pattern_fields(pattern: str) -> set[str]:
    """The placeholders of a path pattern, e.g. ``{"OUT", "layer"}``."""
    return {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}


@dataclass(frozen=True)
class Figure:
    """One figure: what it reads, how much memory it needs, where the report shows it.

    Parameters
    ----------
    stem
        The figure's name: its rule, ``figures/<stem>.<format>``, ``logs/<stem>.log``,
        ``benchmarks/<stem>.tsv`` and its caption ``workflow/report/<stem>.rst``.
    inputs
        Input name -> path pattern (placeholders ``{OUT}``, ``{layer}``, ``{RUN_OUT}``); the
        drawing function reads them by these names.
    category, subcategory
        Where the report shows the figure.
    extra_mb
        Memory (MB) the drawing needs beyond the figure script's measured peak
        (`neurofacets.job_resources.FIGURE_SCRIPT_MB`), e.g. for images read from stores.
    options
        Keys of the config's ``figures`` section handed to the drawing function as options.
    needs_hierarchy
        The figure exists only for runs with a class hierarchy (the semantics stage).
    needs_control
        The figure compares runs with their untrained controls (`neurofacets.controls`):
        it is drawn for a multi-run call in which a run has one, from the call's own tables.
    """

    stem: str
    inputs: Mapping[str, str]
    category: str
    subcategory: str
    extra_mb: int = 0
    options: tuple[str, ...] = ()
    needs_hierarchy: bool = False
    needs_control: bool = False

    def __post_init__(self) -> None:
        if not _STEM.match(self.stem):
            raise ValueError(f"figure {self.stem!r}: a stem is a letter then letters, digits or '_'")
        if not self.inputs:
            raise ValueError(f"figure {self.stem}: no inputs")
        for name, pattern in self.inputs.items():
            if not name.isidentifier():
                raise ValueError(f"figure {self.stem}: input name {name!r} is not an identifier")
            fields = pattern_fields(pattern)
            unknown = fields - {OUT, LAYER, RUN_OUT}
            if unknown:
                raise ValueError(
                    f"figure {self.stem}: input {name} {pattern!r} has the unknown placeholders "
                    f"{sorted(unknown)}; use {{{OUT}}}, {{{LAYER}}} or {{{RUN_OUT}}}"
                )
            if {LAYER, RUN_OUT} <= fields:
                raise ValueError(f"figure {self.stem}: input {name} {pattern!r} is per layer and per run at once")
            if OUT not in fields and RUN_OUT not in fields:
                raise ValueError(f"figure {self.stem}: input {name} {pattern!r} lies in no run folder")
        if self.extra_mb < 0:
            raise ValueError(f"figure {self.stem}: extra_mb must be >= 0, got {self.extra_mb}")
        # a read-only copy: the table is shared by every rule and the drawing registry
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "options", tuple(self.options))

    @property
    def compares_runs(self) -> bool:
        """Whether the figure reads several runs' files (an input over ``{RUN_OUT}``) or a
        multi-run call's table of them (`needs_control`)."""
        return self.needs_control or any(RUN_OUT in pattern_fields(p) for p in self.inputs.values())

    @property
    def caption(self) -> str:
        """The caption file, relative to the repository root."""
        return CAPTION_PATTERN.format(stem=self.stem)

    def input_paths(
        self, out: str, layers: Sequence[str] = (), run_outs: Sequence[str] = ()
    ) -> dict[str, str | list[str]]:
        """Every input filled in: a path, or a list for inputs per layer or per run.

        Parameters
        ----------
        out
            The run's folder (``results/<run>``); for a comparison, the comparing run's.
        layers
            The run's analysed layers, for ``{layer}`` patterns.
        run_outs
            The compared runs' folders, for ``{RUN_OUT}`` patterns.
        """
        return {name: fill_pattern(pattern, out, layers, run_outs) for name, pattern in self.inputs.items()}

    def outputs(self, out: str, formats: Sequence[str]) -> list[str]:
        """The figure's files in ``out``/figures, one per format, in the order given."""
        return [f"{out}/figures/{self.stem}.{fmt}" for fmt in formats]


def fill_pattern(
    pattern: str, out: str, layers: Sequence[str] = (), run_outs: Sequence[str] = ()
) -> str | list[str]:
    """One input pattern filled in (see [`Figure.input_paths`][])."""
    fields = pattern_fields(pattern)
    if LAYER in fields:
        return [pattern.format(OUT=out, layer=layer) for layer in layers]
    if RUN_OUT in fields:
        return [pattern.format(OUT=out, RUN_OUT=run_out) for run_out in run_outs]
    return pattern.format(OUT=out)


def report_format(formats: Sequence[str]) -> str:
    """The format the report embeds: the first of `REPORT_FORMATS` the run writes."""
    for fmt in REPORT_FORMATS:
        if fmt in formats:
            return fmt
    raise ValueError(f"figures.format {list(formats)} holds none of {REPORT_FORMATS}")


# The run's tables every metrics figure reads.
_METRICS = {"metrics": "{OUT}/metrics/all_layers.csv", "layers": "{OUT}/model/layers.csv"}
# ... and the run's summary, for the layer means' and shares' 95 % intervals
_METRICS_INTERVALS = {**_METRICS, "summary": "{OUT}/summary.csv"}
_IMAGES = {"ica": "{OUT}/ica/{layer}.zarr", "patches": "{OUT}/patches/{layer}.zarr"}
_IMAGES_MB = 300  # the ICA and patch stores' images of every layer
_COMPARED = "Compared with other runs"

FIGURE_TABLE: tuple[Figure, ...] = (
    # --- one run's figures (results/<run>/figures), in the order the report lists them
    Figure("fig1_sparsity_flatness", _METRICS_INTERVALS, CAT_ENCODE, "Main figures"),
    Figure("fig2_mf_distribution", _METRICS_INTERVALS, CAT_ENCODE, "Main figures"),
    Figure("fig3_mf_sf_counts", _METRICS_INTERVALS, CAT_ENCODE, "Main figures"),
    Figure("appA_distributions", _METRICS, CAT_ENCODE, "Appendix"),
    Figure(
        "semantic_facets",
        {"semantics_summary": "{OUT}/semantics/summary.csv", "layers": "{OUT}/model/layers.csv"},
        CAT_ENCODE, "Semantics", needs_hierarchy=True,
    ),
    Figure(
        "evaluation",
        {"evaluation_summary": "{OUT}/evaluation/summary.csv", "evaluation": "{OUT}/evaluation/all_layers.csv"},
        CAT_ENCODE, SUB_EVALUATION,
    ),
    Figure("fig4_facet_examples", {**_METRICS, **_IMAGES}, CAT_VISUALIZE, "Main figures",
           extra_mb=_IMAGES_MB, options=("examples_per_layer",)),
    Figure("appB_ica_by_mf", {**_METRICS, **_IMAGES}, CAT_VISUALIZE, "Appendix", extra_mb=_IMAGES_MB),
    Figure(
        "fig5_similarity",
        {"similarity_summary": "{OUT}/similarity/summary.csv", "layers": "{OUT}/model/layers.csv"},
        CAT_SIMILARITY, "Main figures",
    ),
    Figure(
        "appC_heatmaps",
        {"similarity": "{OUT}/similarity/{layer}.zarr", "layers": "{OUT}/model/layers.csv"},
        CAT_SIMILARITY, "Appendix", extra_mb=_IMAGES_MB,
    ),
    # --- figures comparing runs (results/<comparing run>/figures)
    Figure("compare_runs", {"summaries": "{RUN_OUT}/summary.csv"}, CAT_SUMMARY, _COMPARED),
    Figure("compare_facets", {"summaries": "{RUN_OUT}/summary.csv"}, CAT_SUMMARY, _COMPARED),
    Figure(
        "compare_semantic_facets",
        # runs.csv: which runs have a class hierarchy (the runs this figure compares)
        {"runs": "{OUT}/semantics/runs.csv", "semantics_summaries": "{RUN_OUT}/semantics/summary.csv"},
        CAT_SUMMARY, _COMPARED, needs_hierarchy=True,
    ),
    Figure("compare_evaluation", {"evaluation_summaries": "{RUN_OUT}/evaluation/summary.csv"}, CAT_SUMMARY, _COMPARED),
    # each run beside its untrained control: from the call's table (rules/runs.smk, beside_control)
    Figure("beside_control", {"beside": "{OUT}/tables/beside_control.csv"}, CAT_SUMMARY, _COMPARED,
           needs_control=True),
)

#: stem -> figure
FIGURES_BY_STEM: Mapping[str, Figure] = MappingProxyType({figure.stem: figure for figure in FIGURE_TABLE})
if len(FIGURES_BY_STEM) != len(FIGURE_TABLE):
    raise ValueError("FIGURE_TABLE: two figures have the same stem")

#: A run's own figures (not comparing runs), drawn by rules/figures.smk.
RUN_FIGURES: tuple[Figure, ...] = tuple(f for f in FIGURE_TABLE if not f.compares_runs)
#: The figures comparing runs, drawn by rules/runs.smk (and compare_runs by rules/report.smk).
COMPARISON_FIGURES: tuple[Figure, ...] = tuple(f for f in FIGURE_TABLE if f.compares_runs)

__all__ = [
    "CAPTION_PATTERN", "CAT_ENCODE", "CAT_SIMILARITY", "CAT_SUMMARY", "CAT_VISUALIZE", "COMPARISON_FIGURES",
    "FIGURES_BY_STEM", "FIGURE_TABLE", "Figure", "RUN_FIGURES", "SUB_EVALUATION", "fill_pattern", "pattern_fields",
    "report_format",
]
