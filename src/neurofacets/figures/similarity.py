"""Fig. 5 and Appendix C: how similar the neurons of a layer are in the classes they prefer.

Similarity is the Pearson correlation between two neurons' CoF rows, dissimilarity the
Euclidean distance between them (docs/methods.md). Neurons with a zero-variance CoF row (dead
ones, for instance) have no correlation and are excluded upstream; they are grey in the
heatmaps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure

from ..pathlike import PathLike
from ..readers import Similarity, read_similarity, stores_by_layer
from . import style

logger = logging.getLogger(__name__)


def plot_similarity_summary(summary: pd.DataFrame, layers: Sequence[str]) -> Figure:
    """Fig. 5: mean off-diagonal similarity (a, Pearson) and dissimilarity (b, Euclidean).

    ``summary`` is ``similarity/summary.csv``; layers without a row are left as gaps.
    """
    if not len(layers):
        raise ValueError("no layers given")
    unknown = set(summary["layer"]) - set(layers)
    if unknown:
        raise ValueError(f"summary holds layers {sorted(unknown)} that are not in the layer list")
    table = summary.set_index("layer").reindex(list(layers))
    x = np.arange(len(layers))
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 2.4)
        ax_sim, ax_dis = fig.subplots(1, 2)
        ax_sim.plot(x, table["mean_similarity"].to_numpy(dtype=float), marker="o", color=style.SIMILARITY_COLOR)
        ax_sim.set_ylabel("mean Pearson correlation")
        ax_sim.axhline(0, color="#888888", linewidth=0.6, zorder=0)
        style.panel_label(ax_sim, "a")
        ax_sim.set_title("neuronal similarity")
        ax_dis.plot(x, table["mean_dissimilarity"].to_numpy(dtype=float), marker="s",
                    color=style.DISSIMILARITY_COLOR)
        ax_dis.set_ylabel("mean Euclidean distance")
        ax_dis.set_ylim(bottom=0)
        style.panel_label(ax_dis, "b")
        ax_dis.set_title("neuronal dissimilarity")
        for ax in (ax_sim, ax_dis):
            style.set_layer_axis(ax, layers)
    return fig


def _heatmap_block(
    subfig: SubFigure,
    matrices: Mapping[str, np.ndarray],
    layers: Sequence[str],
    cmap: str,
    norm: Normalize,
    label: str,
    columns: int,
) -> None:
    n_rows, n_cols = -(-len(layers) // columns), min(columns, len(layers))
    axes = np.atleast_1d(subfig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    for ax in axes[len(layers):]:
        ax.remove()
    colormap = style.colormap(cmap)
    image = None
    for ax, name in zip(axes, layers):
        matrix = matrices[name]
        # imshow + rasterized: one image per panel whatever the neuron count (512 x 512
        # cells would be 262k vector patches with pcolormesh). "antialiased" averages
        # cells when a panel has fewer pixels than neurons (no aliasing moire) and
        # keeps sharp cells when it has more.
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colormap, norm=norm, interpolation="antialiased",
                          rasterized=True)
        ax.set_title(f"{style.layer_label(name)} ({len(matrix)})", fontsize=7)
        ax.tick_params(labelsize=6, length=2)
        ticks = _neuron_ticks(len(matrix))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
    subfig.colorbar(image, ax=axes[: len(layers)].tolist(), shrink=0.8, label=label, aspect=30)


def _neuron_ticks(n: int) -> list[int]:
    """At most 3 round tick positions in 0..n-1 (neuron numbers)."""
    if n <= 1:
        return [0]
    step = max(1, int(10 ** np.floor(np.log10(max(n - 1, 1)))))
    while (n - 1) // step > 2:
        step *= 2
    return list(range(0, n, step))


def plot_heatmaps(
    similarity_stores: Sequence[PathLike] | Mapping[str, PathLike],
    layers: Sequence[str],
    columns: int = 5,
) -> Figure:
    """Appendix C: per layer, heatmaps of the Euclidean (a) and Pearson (b) matrices.

    Neurons in their network order along both axes (the number of neurons in brackets).
    Pearson uses a fixed diverging scale -1..1; Euclidean one scale 0..max shared by all
    layers so that layers compare. Excluded neurons are grey.
    """
    if columns < 1:
        raise ValueError("columns must be at least 1")
    paths = stores_by_layer(similarity_stores)
    missing = [name for name in layers if name not in paths]
    if missing:
        raise ValueError(f"similarity stores are missing for layers {missing}")
    data: dict[str, Similarity] = {name: read_similarity(paths[name]) for name in layers}
    euclidean = {name: d.euclidean for name, d in data.items()}
    pearson = {name: d.pearson for name, d in data.items()}
    finite_max = [np.nanmax(m) for m in euclidean.values() if np.isfinite(m).any()]
    e_norm = Normalize(0, max(finite_max) if finite_max and max(finite_max) > 0 else 1)
    n_rows = -(-len(layers) // columns)
    panel = style.DOUBLE_COLUMN / min(columns, len(layers))
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 2 * (0.35 + n_rows * (panel * 0.85 + 0.15)))
        top, bottom = fig.subfigures(2, 1)
        _heatmap_block(top, euclidean, layers, style.EUCLIDEAN_CMAP, e_norm, "Euclidean distance", columns)
        top.suptitle("a) Conceptual dissimilarity: Euclidean distance between CoF rows", x=0.01, ha="left",
                     fontweight="bold")
        _heatmap_block(bottom, pearson, layers, style.PEARSON_CMAP, Normalize(-1, 1), "Pearson correlation",
                       columns)
        bottom.suptitle("b) Conceptual similarity: Pearson correlation between CoF rows", x=0.01, ha="left",
                        fontweight="bold")
    return fig
