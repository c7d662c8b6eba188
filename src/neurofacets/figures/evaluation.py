"""Can a reader trust a neuron's label? The evaluation per layer (``evaluation``) and across runs
(``compare_evaluation``).

Both read the evaluation stage's tables ([`neurofacets.evaluation`][], docs/evaluation.md)
through [`neurofacets.readers`][]: ``evaluation/all_layers.csv`` (one row per neuron) and
``evaluation/summary.csv`` (one row per layer). Three questions, one panel each:

- does the explanation formed on one half of the images predict the neuron's activations on
  the other half better than a random explanation of the same size (held-out AUROC against
  chance)?
- do the two halves give the same verdict (split-half Spearman rho of the MF degree, Cohen's
  kappa of the facet)?
- how many neurons are selective at q < 5 %, with the true labels and with permuted ones (the
  false-positive rate, expected at or below 5 %)?
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from . import style
from .compare import RUN_COLORS, draw_runs, panel_figure

#: The q-value threshold the summary counts selective neurons under, drawn as the level the
#: permuted labels' rate should stay below. It is
#: `neurofacets.evaluation.Q_SIGNIFICANT` (a test checks they agree), written out here
#: because importing the evaluation module would make every figure's rule rerun whenever the
#: evaluation code changes (rerun triggers hash the modules a script imports, docs/design.md §1).
Q_SIGNIFICANT = 0.05

LABEL_COLOR = "#0072B2"  # the neurons' top classes
CONCEPT_COLOR = "#009E73"  # their concepts on the class hierarchy
CHANCE_LINE = {"linestyle": "--", "linewidth": 0.9, "marker": None}
LEVEL_LINE = {"color": "#777777", "linestyle": ":", "linewidth": 0.9}
# split-half agreement: column, label, colour
AGREEMENT = (
    ("mf_rho", "MF degree (Spearman rho)", style.FACET_COLORS["MF"]),
    ("facet_kappa", "MF/SF facet (Cohen's kappa)", "#000000"),
    ("semantic_facet_kappa", "semantic facet (Cohen's kappa)", CONCEPT_COLOR),
)
COMPARE_PANELS = (
    ("median_auroc", "median held-out AUROC"),
    ("frac_label_holds", "fraction of labels that hold"),
    ("mf_rho", "split-half rho of MF degree"),
    ("facet_kappa", "split-half kappa of the facet"),
)


def _present(table: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` exists and holds a number (the concept columns need a class hierarchy)."""
    return column in table.columns and bool(table[column].notna().any())


def _quartiles(every: pd.DataFrame, column: str, layers: Sequence[str]) -> np.ndarray:
    """(layers, 3): the 25th, 50th and 75th percentile of ``column`` per layer (NaN where none)."""
    groups = every.groupby("layer", sort=False)[column]
    out = np.full((len(layers), 3), np.nan)
    for i, layer in enumerate(layers):
        if layer in groups.groups:
            values = groups.get_group(layer).dropna().to_numpy(dtype=float)
            if values.size:
                out[i] = np.percentile(values, [25, 50, 75])
    return out


def _held_out_panel(ax: Axes, summary: pd.DataFrame, every: pd.DataFrame, layers: Sequence[str]) -> list:
    """Median held-out AUROC per layer with its interquartile band, and the chance median."""
    x = np.arange(len(layers))
    kinds = [("", "labels (top classes)", LABEL_COLOR)]
    if _present(every, "concept_auroc"):
        kinds.append(("concept_", "concepts", CONCEPT_COLOR))
    handles = []
    for prefix, label, color in kinds:
        low, median, high = _quartiles(every, f"{prefix}auroc", layers).T
        ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
        (line,) = ax.plot(x, median, marker="o", color=color, label=label)
        ax.plot(x, summary[f"median_{prefix}auroc_chance"].to_numpy(dtype=float), color=color, **CHANCE_LINE)
        handles.append(line)
    ax.axhline(0.5, **LEVEL_LINE)
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, 0.4), max(high, 1.0))
    ax.set_ylabel("held-out AUROC (median, IQR)")
    return handles


def _agreement_panel(ax: Axes, summary: pd.DataFrame, layers: Sequence[str]) -> None:
    """Split-half rho of MF degree and kappa of the facets per layer, each with its 95 % interval (band)."""
    x = np.arange(len(layers))
    for column, label, color in AGREEMENT:
        if _present(summary, column):
            ax.plot(x, summary[column].to_numpy(dtype=float), marker="o", color=color, label=label)
            style.interval_band(ax, x, summary, column, layers, color)
    ax.axhline(0.0, **LEVEL_LINE)
    low, _ = ax.get_ylim()
    ax.set_ylim(min(low, -0.05), 1.03)
    ax.set_ylabel("agreement of the two halves")
    ax.legend(loc="best")


def _selectivity_panel(ax: Axes, summary: pd.DataFrame, layers: Sequence[str]) -> None:
    """Fraction of neurons selective at q < 5 %, true and permuted labels, the fraction whose label
    holds on held-out images (q < 5 %, with its 95 % interval) and the 5 % level."""
    x = np.arange(len(layers))
    ax.plot(x, summary["frac_selective_true"].to_numpy(dtype=float), marker="o", color="#D55E00",
            label="true labels")
    ax.plot(x, summary["frac_selective_permuted"].to_numpy(dtype=float), marker="s", color="#555555",
            label="permuted labels")
    ax.plot(x, summary["frac_label_holds"].to_numpy(dtype=float), marker="^", color=LABEL_COLOR,
            label="labels that hold (held out)")
    style.interval_band(ax, x, summary, "frac_label_holds", layers, LABEL_COLOR)
    ax.axhline(Q_SIGNIFICANT, label=f"{Q_SIGNIFICANT:.0%}", **LEVEL_LINE)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel(f"fraction of neurons at q < {Q_SIGNIFICANT:g}")
    ax.legend(loc="best")


def plot_evaluation(summary: pd.DataFrame, every: pd.DataFrame, layers: Sequence[str]) -> Figure:
    """Three panels per layer (network order on x): (a) the held-out AUROC of the neurons'
    explanations (median line, interquartile band; concepts too where the run has a class
    hierarchy) against the median AUROC with the held-out labels permuted (chance, dashed);
    (b) split-half rho of MF degree and kappa of the facets, each with its 95 % bootstrap interval
    (band; none when ``analysis.bootstrap`` is 0); (c) the fraction of neurons
    selective at q < 5 % with the true and with permuted labels, the fraction whose label holds
    (with its 95 % interval), and the 5 % level.

    Parameters
    ----------
    summary
        ``evaluation/summary.csv`` ([`neurofacets.readers.read_evaluation_summary`][]).
    every
        ``evaluation/all_layers.csv`` ([`neurofacets.readers.read_evaluation`][]).
    layers
        The layers to draw, in network order (each a row of ``summary``).
    """
    table = summary.set_index("layer").reindex(list(layers)).reset_index()
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 2.9)
        ax_auroc, ax_halves, ax_selective = fig.subplots(1, 3)
        handles = _held_out_panel(ax_auroc, table, every, layers)
        _agreement_panel(ax_halves, table, layers)
        _selectivity_panel(ax_selective, table, layers)
        for ax, letter in zip((ax_auroc, ax_halves, ax_selective), "abc"):
            style.set_layer_axis(ax, list(layers))
            style.panel_label(ax, letter)
        handles += [Line2D([], [], color="#555555", label="random explanation, same size (chance)", **CHANCE_LINE)]
        fig.legend(handles=handles, loc="outside upper center", ncols=len(handles))
    return fig


def plot_compare_evaluation(summaries: pd.DataFrame) -> Figure:
    """Per run (one line each), per layer: (a) the median held-out AUROC, each run's chance
    median dashed in its colour; (b) the fraction of labels that hold; (c) split-half rho of
    MF degree; (d) split-half kappa of the facet. The x axis names the layers when every run
    analysed the same ones, else it is the relative depth (column ``depth``)."""
    with style.paper_style():
        fig, axes, axis = panel_figure(summaries, COMPARE_PANELS, (2, 2), 4.8)
        draw_runs(axes[0], summaries, "median_auroc_chance", axis, label="_chance", **CHANCE_LINE)
        axes[0].axhline(0.5, **LEVEL_LINE)
        for ax in axes[2:]:
            ax.axhline(0.0, **LEVEL_LINE)
        axes[0].plot([], [], color=RUN_COLORS[0], label="chance (dashed)", **CHANCE_LINE)
        axes[0].legend(loc="best", handles=axes[0].get_lines()[-1:])
    return fig


__all__ = ["plot_compare_evaluation", "plot_evaluation"]
