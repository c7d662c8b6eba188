"""Semantic facets per layer (``semantic_facets``) and across runs (``compare_semantic_facets``).

Both read ``semantics/summary.csv`` (`neurofacets.semantics.stage`): per layer the
fractions of SF / concept / MF neurons, the mean depth of their concepts and their mean
semantic spread, each beside its chance level (dashed: the same statistics with the image
labels permuted; for the spread, the exact mean over random image pairs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..readers import DEAD, MF, SF
from ..semantics.concepts import CONCEPT
from . import style
from .compare import RUN_COLORS, draw_runs, panel_figure

SEMANTIC_COLORS = {SF: style.FACET_COLORS[SF], CONCEPT: "#009E73", MF: style.FACET_COLORS[MF],
                   DEAD: style.FACET_COLORS[DEAD]}
SEMANTIC_LABELS = {SF: "SF (one class)", CONCEPT: "concept (one covering concept)",
                   MF: "MF (no concept covers)", DEAD: DEAD}
NULL_LINE = {"linestyle": "--", "marker": None, "linewidth": 0.9, "alpha": 0.8}
CHANCE_LINE = {"linestyle": ":", "linewidth": 0.9}
COMPARE_PANELS = (
    ("frac_concept", "fraction of concept neurons"),
    ("frac_MF", "fraction of semantic MF neurons"),
    ("mean_concept_depth", "mean depth of the concept"),
    ("spread_ratio", "mean spread / chance spread"),
)


def plot_semantic_facets(summary: pd.DataFrame, layers: Sequence[str]) -> Figure:
    """Three panels per layer: (a) fractions of SF, concept and MF neurons; (b) mean depth of
    the neurons' concepts; (c) mean semantic spread. Solid: observed; dashed: the image labels
    permuted; dotted (c): the chance spread of random image pairs."""
    table = summary.set_index("layer").reindex(list(layers))
    x = np.arange(len(layers))
    ink = "#000000"
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 2.9)
        ax_frac, ax_depth, ax_spread = fig.subplots(1, 3)
        facets = [SF, CONCEPT, MF] + ([DEAD] if table["frac_dead"].fillna(0).any() else [])
        for facet in facets:
            color = SEMANTIC_COLORS[facet]
            ax_frac.plot(x, table[f"frac_{facet}"].to_numpy(dtype=float), marker="o", color=color,
                         label=SEMANTIC_LABELS[facet])
            if f"null_frac_{facet}" in table:
                ax_frac.plot(x, table[f"null_frac_{facet}"].to_numpy(dtype=float), color=color, **NULL_LINE)
        ax_frac.set_ylim(-0.03, 1.03)
        ax_frac.set_ylabel("fraction of the layer's neurons")

        ax_depth.plot(x, table["mean_concept_depth"].to_numpy(dtype=float), marker="o", color=ink)
        ax_depth.plot(x, table["null_mean_concept_depth"].to_numpy(dtype=float), color=ink, **NULL_LINE)
        ax_depth.set_ylabel("mean depth of the concepts")

        spread_color = "#CC79A7"
        ax_spread.plot(x, table["mean_spread"].to_numpy(dtype=float), marker="o", color=spread_color)
        if "null_mean_spread" in table:
            ax_spread.plot(x, table["null_mean_spread"].to_numpy(dtype=float), color=spread_color, **NULL_LINE)
        ax_spread.axhline(float(table["chance_spread"].iloc[0]), color="#777777", **CHANCE_LINE)
        ax_spread.set_ylabel("mean semantic spread (path length)")
        for ax, letter in zip((ax_frac, ax_depth, ax_spread), "abc"):
            style.set_layer_axis(ax, list(layers))
            style.panel_label(ax, letter)
        handles = [*ax_frac.get_lines()[::2],
                   Line2D([], [], color="#555555", marker="o", label="observed"),
                   Line2D([], [], color="#555555", label="image labels permuted", **NULL_LINE),
                   Line2D([], [], color="#777777", label="chance (random image pairs)", **CHANCE_LINE)]
        fig.legend(handles=handles, loc="outside upper center", ncols=4)
    return fig


def plot_compare_semantic_facets(summaries: pd.DataFrame) -> Figure:
    """Per run (one line each): fractions of concept and MF neurons, mean concept depth and
    mean spread relative to chance; each run's permutation null dashed in its colour."""
    table = summaries.assign(spread_ratio=summaries["mean_spread"] / summaries["chance_spread"],
                             null_spread_ratio=summaries.get("null_mean_spread", np.nan) / summaries["chance_spread"])
    with style.paper_style():
        fig, axes, axis = panel_figure(table, COMPARE_PANELS, (2, 2), 4.8)
        for ax, (column, _) in zip(axes, COMPARE_PANELS):
            null = f"null_{column}"
            if null in table and table[null].notna().any():
                draw_runs(ax, table, null, axis, label="_null", **NULL_LINE)
        axes[3].axhline(1.0, color="#777777", **CHANCE_LINE)
        axes[0].plot([], [], color=RUN_COLORS[0], label="labels permuted (dashed)", **NULL_LINE)
        axes[0].legend(loc="best", handles=axes[0].get_lines()[-1:])
    return fig
