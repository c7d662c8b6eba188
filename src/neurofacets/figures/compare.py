"""The cross-run comparison figures: headline numbers of several runs per layer.

`plot_compare_runs` (``compare_runs``) and `plot_compare_facets`
(``compare_facets``) read the runs' ``summary.csv``; the semantic comparison
(`neurofacets.figures.semantics.plot_compare_semantic_facets`) draws with the same
helpers (`RunAxis`, `draw_runs`).
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import style

logger = logging.getLogger(__name__)

PANELS = (
    ("mean_mf", "mean MF degree (raw)"),
    ("frac_mf", "fraction of MF neurons"),
    ("mean_similarity", "mean similarity (Pearson)"),
    ("mean_dissimilarity", "mean dissimilarity (Euclidean)"),
)
FACET_PANELS = (
    ("frac_mf", "fraction of MF neurons"),
    ("frac_sf", "fraction of SF neurons"),
    ("frac_dead", "fraction of dead neurons"),
)
RUN_COLORS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442")
RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
INTERVAL_ALPHA = 0.2
#: The numbers of the figure beside the control (``beside_control``): column of
#: ``tables/beside_control.csv``'s ``number``, y label.
BESIDE_PANELS = (
    ("frac_mf", "fraction of MF neurons"),
    ("frac_label_holds", "fraction of labels that hold"),
    ("mf_rho", "split-half rho of MF degree"),
    ("mean_mf", "mean MF degree (raw)"),
)
CONTROL_LINE = {"linestyle": "--", "marker": None}


@dataclass(frozen=True)
class RunAxis:
    """The runs of a stacked per-layer table (column ``run``, ``layer_index``, ``layer``, ``depth``)
    and the shared x axis: layer names when every run analysed the same layers, else the
    relative depth (0 = first analysed layer, 1 = last) so different networks line up."""

    runs: tuple[str, ...]
    layers: tuple[str, ...] | None  # the common layers, or None: x is the relative depth

    @classmethod
    def of(cls, table: pd.DataFrame) -> RunAxis:
        if table.empty:
            raise ValueError("no rows to compare")
        runs = tuple(str(r) for r in dict.fromkeys(table["run"]))
        lists = {tuple(table.loc[table["run"] == run].sort_values("layer_index")["layer"]) for run in runs}
        return cls(runs, lists.pop() if len(lists) == 1 else None)

    def x(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["layer_index"].to_numpy() if self.layers is not None else rows["depth"].to_numpy()

    def style_axis(self, ax: Axes) -> None:
        if self.layers is not None:
            style.set_layer_axis(ax, list(self.layers))
        else:
            ax.set_xlim(-0.03, 1.03)
            ax.set_xticks(np.linspace(0, 1, 5))
            ax.set_xlabel("relative depth (0 first, 1 last layer)")


def draw_interval(ax: Axes, x: np.ndarray, low: np.ndarray, high: np.ndarray, color: str) -> None:
    """A 95 % interval as a band (where both ends are finite)."""
    finite = np.isfinite(low) & np.isfinite(high)
    if finite.any():
        ax.fill_between(x, low, high, where=finite, color=color, alpha=INTERVAL_ALPHA, linewidth=0)


def draw_runs(ax: Axes, table: pd.DataFrame, column: str, axis: RunAxis, **line) -> None:
    """One line per run of ``table[column]`` over the layers (colours and markers per run), with
    the 95 % interval as a band where the table has ``<column>_ci_low`` and ``<column>_ci_high``."""
    bands = {f"{column}_ci_low", f"{column}_ci_high"} <= set(table.columns)
    for i, run in enumerate(axis.runs):
        rows = table[table["run"].astype(str) == run].sort_values("layer_index")
        kwargs = {"marker": RUN_MARKERS[i % len(RUN_MARKERS)], "color": RUN_COLORS[i % len(RUN_COLORS)],
                  "label": run, **line}
        ax.plot(axis.x(rows), rows[column].to_numpy(dtype=float), **kwargs)
        if bands:
            draw_interval(ax, axis.x(rows), rows[f"{column}_ci_low"].to_numpy(dtype=float),
                          rows[f"{column}_ci_high"].to_numpy(dtype=float), kwargs["color"])


def panel_figure(table: pd.DataFrame, panels: Sequence[tuple[str, str]], shape: tuple[int, int],
                 height: float) -> tuple[Figure, list[Axes], RunAxis]:
    """A grid of per-run panels (column, y label), lettered, with the run legend on top."""
    axis = RunAxis.of(table)
    fig = style.new_figure(style.DOUBLE_COLUMN, height)
    axes = list(np.atleast_1d(fig.subplots(*shape)).ravel())
    for ax, (column, label), letter in zip(axes, panels, "abcdefgh"):
        draw_runs(ax, table, column, axis)
        ax.set_ylabel(label)
        axis.style_axis(ax)
        if column.startswith("frac"):
            ax.set_ylim(-0.03, 1.03)
        style.panel_label(ax, letter)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=min(len(axis.runs), 4), title="run")
    return fig, axes, axis


def preprocessing_note(summaries: pd.DataFrame) -> str:
    """``""`` when every run saw its images preprocessed alike, else a line naming each run's.

    Runs preprocessed differently (another decode path, size or precision) may rank other
    images at the k-th place of a neuron: their statistics compare, their neurons one by one
    do not. The note is logged and printed under the figure.
    """
    by_run = summaries.groupby("run", sort=False)["preprocessing"].first().fillna("")
    if by_run.nunique() < 2:
        return ""
    runs = "; ".join(f"{run}: {label or 'not recorded'}" for run, label in by_run.items())
    return f"runs preprocessed differently ({runs}): compare statistics, not neurons"


def _compare_figure(summaries: pd.DataFrame, panels, grid: tuple[int, int], height: float) -> Figure:
    if summaries.empty:
        raise ValueError("no summary rows to compare")
    note = preprocessing_note(summaries)
    if note:
        logger.warning("%s", note)
    with style.paper_style():
        fig, _, _ = panel_figure(summaries, panels, grid, height)
        if note:
            fig.text(0.5, 0.0, textwrap.fill(note, 110), ha="center", va="top", fontsize=6, color="#b00000")
    return fig


def plot_compare_runs(summaries: pd.DataFrame) -> Figure:
    """Headline numbers per layer of several runs, one line per run (4 panels)."""
    return _compare_figure(summaries, PANELS, (2, 2), 4.6)


def plot_compare_facets(summaries: pd.DataFrame) -> Figure:
    """Fractions of MF, SF and dead neurons per layer of several runs (Fig. 3a across runs)."""
    return _compare_figure(summaries, FACET_PANELS, (1, 3), 2.6)


def plot_beside_control(beside: pd.DataFrame) -> Figure:
    """Each run beside its untrained control (``tables/beside_control.csv``,
    `neurofacets.beside_control`): per number of `BESIDE_PANELS` the table holds, top
    the run (solid) and its control (dashed, same colour) per layer, bottom the difference with
    its paired 95 % interval; bands where the bootstrap drew intervals."""
    if beside.empty:
        raise ValueError("no run has an untrained control: nothing to draw")
    panels = [(n, label) for n, label in BESIDE_PANELS if (beside["number"] == n).any()]
    if not panels:
        raise ValueError(f"the beside-control table holds none of {[n for n, _ in BESIDE_PANELS]}")
    pairs = list(dict.fromkeys(zip(beside["run"].astype(str), beside["control"].astype(str))))
    axis = RunAxis.of(beside.drop_duplicates(["run", "layer"]))
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 4.6)
        grid = np.atleast_2d(fig.subplots(2, len(panels), squeeze=False))
        for j, (number, label) in enumerate(panels):
            top, bottom = grid[0, j], grid[1, j]
            rows = beside[beside["number"] == number]
            for i, (run, control) in enumerate(pairs):
                color = RUN_COLORS[i % len(RUN_COLORS)]
                mine = rows[(rows["run"] == run) & (rows["control"] == control)].sort_values("layer_index")
                x = axis.x(mine)
                for prefix, name, kind in (("value", run, {"marker": RUN_MARKERS[i % len(RUN_MARKERS)]}),
                                           ("control", control, CONTROL_LINE)):
                    value = mine["value" if prefix == "value" else "control_value"].to_numpy(dtype=float)
                    top.plot(x, value, color=color, label=name, **kind)
                    draw_interval(top, x, mine[f"{prefix}_ci_low"].to_numpy(dtype=float),
                                  mine[f"{prefix}_ci_high"].to_numpy(dtype=float), color)
                bottom.plot(x, mine["difference"].to_numpy(dtype=float), color=color,
                            marker=RUN_MARKERS[i % len(RUN_MARKERS)], label=f"{run} - {control}")
                draw_interval(bottom, x, mine["difference_ci_low"].to_numpy(dtype=float),
                              mine["difference_ci_high"].to_numpy(dtype=float), color)
            top.set_ylabel(label)
            bottom.set_ylabel("run - control")
            bottom.axhline(0.0, color="#777777", linestyle=":", linewidth=0.9)
            if number.startswith("frac"):
                top.set_ylim(-0.03, 1.03)
            for ax, letter in ((top, "abcd"[j]), (bottom, "efgh"[j])):
                axis.style_axis(ax)
                if axis.layers is not None:  # four panels a row: even a few layer names touch
                    ax.tick_params(axis="x", labelrotation=45)
                    for tick in ax.get_xticklabels():
                        tick.set_horizontalalignment("right")
                        tick.set_rotation_mode("anchor")
                style.panel_label(ax, letter)
        handles, labels = grid[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 4),
                   title="run (solid) and its untrained control (dashed); bands: 95 % intervals")
    return fig
