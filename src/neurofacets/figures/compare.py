"""The cross-run comparison figure (config ``compare_runs``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import style

PANELS = (
    ("mean_mf", "mean MF degree (raw)"),
    ("frac_mf", "fraction of MF neurons"),
    ("mean_similarity", "mean similarity (Pearson)"),
    ("mean_dissimilarity", "mean dissimilarity (Euclidean)"),
)
RUN_COLORS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442")
RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_compare_runs(summaries: pd.DataFrame) -> Figure:
    """Headline numbers per layer of several runs, one line per run (4 panels).

    When every run analysed the same layers the x axis names them; otherwise it is the
    relative depth (0 = first analysed layer, 1 = last) so different networks line up.
    """
    if summaries.empty:
        raise ValueError("no summary rows to compare")
    runs = list(dict.fromkeys(summaries["run"]))
    layer_lists = {run: tuple(summaries.loc[summaries["run"] == run].sort_values("layer_index")["layer"])
                   for run in runs}
    same_layers = len(set(layer_lists.values())) == 1
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 4.6)
        axes = fig.subplots(2, 2).ravel()
        for ax, (column, label) in zip(axes, PANELS):
            for i, run in enumerate(runs):
                table = summaries[summaries["run"] == run].sort_values("layer_index")
                x = table["layer_index"].to_numpy() if same_layers else table["depth"].to_numpy()
                ax.plot(x, table[column].to_numpy(dtype=float), marker=RUN_MARKERS[i % len(RUN_MARKERS)],
                        color=RUN_COLORS[i % len(RUN_COLORS)], label=str(run))
            ax.set_ylabel(label)
            if same_layers:
                style.set_layer_axis(ax, layer_lists[runs[0]])
            else:
                ax.set_xlim(-0.03, 1.03)
                ax.set_xticks(np.linspace(0, 1, 5))
                ax.set_xlabel("relative depth (first to last analysed layer)")
            if column.startswith("frac"):
                ax.set_ylim(-0.03, 1.03)
        for ax, letter in zip(axes, "abcd"):
            style.panel_label(ax, letter)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(runs), 4), title="run")
    return fig
