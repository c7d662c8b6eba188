"""Fig. 1, Fig. 2 and Appendix A: how sparsity, flatness and MF degree are distributed.

All three read ``metrics/all_layers.csv`` only. Dead neurons (no positive activation,
docs/methods.md) have no sparsity, flatness or MF degree and are left out of every
distribution; their share per layer is in Fig. 3. A layer whose neurons are all dead has
nothing to draw: each figure says so above its panels ("layer X: all N neurons dead") and
marks the layer's empty place.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from ..readers import DEAD, present_layers
from . import style

logger = logging.getLogger(__name__)


def alive(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of non-dead neurons (facet ``MF`` or ``SF``)."""
    return metrics[metrics["facet"] != DEAD]


def minmax(values: pd.Series | np.ndarray, reference: pd.Series | np.ndarray | None = None) -> np.ndarray:
    """Scale ``values`` to [0, 1] by the min and max of ``reference`` (default: the values).

    A constant reference maps everything to 0.
    """
    values = np.asarray(values, dtype=float)
    ref = values if reference is None else np.asarray(reference, dtype=float)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return np.full(values.shape, np.nan)
    lo, hi = ref.min(), ref.max()
    if hi == lo:
        return np.zeros(values.shape)
    return (values - lo) / (hi - lo)


def normal_fit(values: np.ndarray) -> tuple[float, float] | None:
    """Maximum-likelihood normal (mean, sd) of the finite values; None with fewer than 2."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    from scipy import stats  # here, not at import: every figure and gallery job imports this module

    mu, sd = stats.norm.fit(values)
    return float(mu), float(sd)


def _draw_normal(ax: Axes, fit: tuple[float, float] | None, x: np.ndarray, **kwargs) -> None:
    """The fitted density on ``x``, or a vertical line where all values are equal."""
    if fit is None:
        return
    mu, sd = fit
    if sd == 0:
        ax.axvline(mu, **kwargs)
    else:
        from scipy import stats

        ax.plot(x, stats.norm.pdf(x, mu, sd), **kwargs)


def _mean_strip(ax: Axes, summary: pd.DataFrame | None, column: str, layers: Sequence[str], colors: Sequence[str],
                reference: pd.Series) -> None:
    """Each layer's mean of ``column`` and its 95 % interval, min-max normalised like ``reference``,
    as a row of dots and bars above the densities (nothing without intervals)."""
    found = style.interval_of(summary, column, layers)
    if found is None:
        return
    lo, hi = float(reference.min()), float(reference.max())
    scale = (lambda v: (np.asarray(v, dtype=float) - lo) / (hi - lo)) if hi > lo else (lambda v: np.zeros_like(v))
    means = scale(summary.set_index("layer").reindex(list(layers))[column].to_numpy(dtype=float))
    low, high = scale(found[0]), scale(found[1])
    top = ax.get_ylim()[1] if ax.lines else 1.0
    rows = top * (1.08 + 0.05 * np.arange(len(layers)))
    for y, mean, a, b, color in zip(rows, means, low, high, colors):
        ax.errorbar([mean], [y], xerr=[[mean - a], [b - mean]], fmt="o", color=color, markersize=2.5,
                    elinewidth=1, capsize=1.5)
    ax.set_ylim(0, rows[-1] + 0.05 * top)
    ax.text(0.01, rows[-1] + 0.02 * top, "layer means, 95 % interval", fontsize=6, va="bottom",
            transform=ax.get_yaxis_transform())


def plot_sparsity_flatness(metrics: pd.DataFrame, layers: Sequence[str], summary: pd.DataFrame | None = None) -> Figure:
    """Fig. 1: per layer, fitted normal density of normalised sparsity (a) and flatness (b).

    Both quantities are min-max normalised over the non-dead neurons of *all* layers (the
    paper's normalisation), so the curves of different layers are on one scale; one curve
    per layer, coloured shallow (dark) to deep (yellow). With ``summary`` (``summary.csv``)
    holding intervals, a strip above the curves shows each layer's mean (dot, same
    normalisation) and its 95 % bootstrap interval (bar), one row per layer.
    """
    layers = present_layers(metrics, layers)
    live = alive(metrics)
    colors = style.layer_colors(len(layers))
    x = np.linspace(-0.15, 1.15, 400)
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 2.6)
        axes = fig.subplots(1, 2, sharex=True)
        for ax, column, letter, title in (
            (axes[0], "sparsity", "a", "sparsity (Gini index)"),
            (axes[1], "flatness", "b", "flatness"),
        ):
            normalised = pd.Series(minmax(live[column], live[column]), index=live.index)
            for name, color in zip(layers, colors):
                values = normalised[live["layer"] == name].to_numpy()
                _draw_normal(ax, normal_fit(values), x, color=color, label=style.layer_label(name))
            _mean_strip(ax, summary, f"mean_{column}", layers, colors, live[column])
            style.panel_label(ax, letter)
            ax.set_title(title)
            ax.set_xlabel(f"normalised {column}")
            ax.set_ylabel("density (fitted normal)")
            ax.set_xlim(x[0], x[-1])
            if style.interval_of(summary, f"mean_{column}", layers) is None:
                ax.set_ylim(bottom=0)
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside right upper", title="layer",
                       ncols=1 if len(layers) <= 14 else 2)
        style.mark_dead_layers(fig, metrics, layers)
    return fig


def plot_mf_distribution(metrics: pd.DataFrame, layers: Sequence[str], summary: pd.DataFrame | None = None) -> Figure:
    """Fig. 2: normalised MF degree per layer (a, box plots) and over all layers (b).

    The box spans the quartiles, the line is the median, the white dot the mean, whiskers
    reach 1.5 IQR; with ``summary`` (``summary.csv``) holding intervals, a black bar through
    the white dot is the mean's 95 % bootstrap interval (``mean_mf_norm``). Panel b is the
    histogram of every non-dead neuron; the dashed line is the mean, and the raw (un-normalised) maximum and mean MF are printed, as the paper
    quotes them (0.63 and 0.53 for VGG16 on ImageNet).
    """
    layers = present_layers(metrics, layers)
    live = alive(metrics)
    colors = style.layer_colors(len(layers))
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 2.6)
        ax_layers, ax_all = fig.subplots(1, 2, width_ratios=[1.6, 1])
        data = [live.loc[live["layer"] == name, "mf_norm"].dropna().to_numpy() for name in layers]
        positions = np.arange(len(layers))
        shown = [i for i, d in enumerate(data) if d.size]
        if shown:
            boxes = ax_layers.boxplot(
                [data[i] for i in shown], positions=positions[shown], widths=0.6, patch_artist=True,
                showmeans=True, flierprops={"markersize": 2, "alpha": 0.5},
                meanprops={"marker": "o", "markerfacecolor": "white", "markeredgecolor": "black",
                           "markersize": 3},
                medianprops={"color": "black", "gid": "median"},
            )
            for patch, i in zip(boxes["boxes"], shown):
                patch.set_facecolor(colors[i])
                patch.set_alpha(0.8)
        found = style.interval_of(summary, "mean_mf_norm", layers)
        if found is not None:
            means = np.array([d.mean() if d.size else np.nan for d in data])
            ax_layers.errorbar(positions, means, yerr=[means - found[0], found[1] - means], fmt="none",
                               ecolor="black", elinewidth=1, capsize=2, zorder=4)
        for i, name in enumerate(layers):
            if name in style.all_dead_layers(metrics, [name]):
                ax_layers.text(i, 0.5, "all dead", rotation=90, ha="center", va="center", fontsize=7,
                               color=style.DEAD_NOTE_COLOR)
        style.set_layer_axis(ax_layers, layers)
        ax_layers.set_ylabel("MF degree (normalised)")
        ax_layers.set_ylim(-0.05, 1.05)
        style.panel_label(ax_layers, "a")
        ax_layers.set_title("per layer")

        values = live["mf_norm"].dropna().to_numpy()
        if values.size:
            bins = np.histogram_bin_edges(values, bins="auto", range=(0, 1))[:61]
            ax_all.hist(values, bins=bins, color="#555555", alpha=0.85)
            ax_all.axvline(values.mean(), color="black", linestyle="--", linewidth=1, label="mean")
            # +inf (a perfectly even class distribution) is left out, as upstream does for means.
            raw = live["mf"].to_numpy(dtype=float)
            raw = raw[np.isfinite(raw)]
            if raw.size:
                ax_all.text(0.98, 0.97, f"raw MF degree\nmax {raw.max():.2f}\nmean {raw.mean():.2f}",
                            transform=ax_all.transAxes, ha="right", va="top")
            ax_all.legend(loc="upper left")
        ax_all.set_xlim(-0.02, 1.02)
        ax_all.set_xlabel("MF degree (normalised)")
        ax_all.set_ylabel("neurons")
        style.panel_label(ax_all, "b")
        ax_all.set_title("all layers")
        style.mark_dead_layers(fig, metrics, layers)
    return fig


def _layer_histograms(
    subfig: SubFigure, metrics: pd.DataFrame, layers: Sequence[str], column: str, color: str, columns: int
) -> None:
    live = alive(metrics)
    all_values = live[column].to_numpy(dtype=float)
    all_values = all_values[np.isfinite(all_values)]
    lo, hi = (all_values.min(), all_values.max()) if all_values.size else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    x = np.linspace(lo - pad, hi + pad, 300)
    bins = np.linspace(lo, hi, 21)
    n_rows, n_cols = -(-len(layers) // columns), min(columns, len(layers))
    axes = np.atleast_1d(subfig.subplots(n_rows, n_cols, sharex=True, squeeze=False)).ravel()
    for ax in axes[len(layers):]:
        ax.remove()
    for ax, name in zip(axes, layers):
        values = live.loc[live["layer"] == name, column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            ax.hist(values, bins=bins, density=True, color=color, alpha=0.55)
        dead = style.all_dead_layers(metrics, [name])
        if dead:
            ax.text(0.5, 0.5, f"all {dead[name]} neurons\ndead", transform=ax.transAxes, ha="center",
                    va="center", fontsize=7, color=style.DEAD_NOTE_COLOR)
        fit = normal_fit(values)
        _draw_normal(ax, fit, x, color="black", linewidth=1)
        ax.set_title(style.layer_label(name), fontsize=8)
        if fit is not None:
            # print the fit on the side of the panel away from the bulk of the histogram
            right = fit[0] < (x[0] + x[-1]) / 2
            ax.text(0.98 if right else 0.02, 0.95, f"μ={fit[0]:.2f}\nσ={fit[1]:.2f}", transform=ax.transAxes,
                    ha="right" if right else "left", va="top", fontsize=6)
        ax.set_xlim(x[0], x[-1])
        ax.tick_params(labelsize=6)
    for ax in axes[: len(layers)]:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("density", fontsize=7)
        if ax.get_subplotspec().is_last_row() or ax is axes[len(layers) - 1]:
            ax.set_xlabel(column, fontsize=7)


def plot_distributions_appendix(metrics: pd.DataFrame, layers: Sequence[str], columns: int = 5) -> Figure:
    """Appendix A: per layer, histogram and fitted normal of flatness (A1) and sparsity (A2).

    Raw (un-normalised) values of the non-dead neurons; the x axis is shared by all
    layers of a block so shifts between layers are visible. One panel per layer.
    """
    layers = present_layers(metrics, layers)
    if columns < 1:
        raise ValueError("columns must be at least 1")
    n_rows = -(-len(layers) // columns)
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 2 * (0.45 + 1.25 * n_rows))
        top, bottom = fig.subfigures(2, 1)
        _layer_histograms(top, metrics, layers, "flatness", style.FLATNESS_COLOR, columns)
        top.suptitle("A1. Flatness of the neurons of each layer", x=0.01, ha="left", fontweight="bold")
        _layer_histograms(bottom, metrics, layers, "sparsity", style.SPARSITY_COLOR, columns)
        bottom.suptitle("A2. Sparsity of the neurons of each layer", x=0.01, ha="left", fontweight="bold")
        style.mark_dead_layers(fig, metrics, layers)
    return fig
