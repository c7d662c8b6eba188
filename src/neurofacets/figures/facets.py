"""Fig. 3, Fig. 4 with Tables 2-3, and Appendix B: single- and multi-faceted neurons.

*Top SF neuron* of a layer: the SF neuron with the lowest MF degree (the most
single-faceted); *top MF neuron*: the MF neuron with the highest MF degree. Ties go to the
lower neuron number so the choice is reproducible.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from ..ica import IcaReader
from ..patches import PatchReader
from ..pathlike import PathLike
from ..readers import DEAD, FACET_TABLE_COLUMNS, MF, SF, present_layers, stores_by_layer
from . import style
from .distributions import alive
from .images import grid_shape, mosaic

logger = logging.getLogger(__name__)

TABLE_COLUMNS = FACET_TABLE_COLUMNS  # the outputs reference lists them from readers


def top_neurons(metrics: pd.DataFrame, layers: Sequence[str], facet: str, n: int) -> pd.DataFrame:
    """The ``n`` top neurons of ``facet`` per layer, in network order (Tables 2 and 3).

    Parameters
    ----------
    facet
        ``"SF"``: lowest MF degree among the SF neurons; ``"MF"``: highest among the MF ones.
    n
        Neurons per layer (fewer where a layer has fewer neurons of that facet).

    Returns
    -------
    pandas.DataFrame
        `TABLE_COLUMNS`; ``rank`` is 1 for the top neuron of its layer.
    """
    if facet not in (SF, MF):
        raise ValueError(f"facet must be 'SF' or 'MF', not {facet!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    layers = present_layers(metrics, layers)
    chosen = metrics[(metrics["facet"] == facet) & metrics["mf"].notna()]
    parts = []
    for name in layers:
        rows = chosen[chosen["layer"] == name]
        # Sort by MF (descending for MF neurons), then by neuron number for ties.
        key = -rows["mf"] if facet == MF else rows["mf"]
        rows = rows.assign(_key=key).sort_values(["_key", "neuron"], kind="stable").head(n)
        parts.append(rows.drop(columns="_key").assign(rank=np.arange(1, len(rows) + 1)))
    if not parts:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    table = pd.concat(parts, ignore_index=True)
    return table[list(TABLE_COLUMNS)]


def facet_counts(metrics: pd.DataFrame, layers: Sequence[str]) -> pd.DataFrame:
    """Per layer (network order): number and fraction of MF, SF and dead neurons."""
    layers = present_layers(metrics, layers)
    counts = (
        metrics.groupby(["layer", "facet"]).size().unstack("facet").reindex(index=layers, columns=[MF, SF, DEAD])
        .fillna(0).astype(int)
    )
    total = counts.sum(axis=1)
    fractions = counts.div(total, axis=0)
    out = counts.add_prefix("n_").join(fractions.add_prefix("frac_"))
    out.insert(0, "n_neurons", total)
    return out


def plot_mf_sf_counts(metrics: pd.DataFrame, layers: Sequence[str], summary: pd.DataFrame | None = None) -> Figure:
    """Fig. 3: fraction of MF and SF neurons per layer (a) and MF degree of the top ones (b).

    Fractions are of all the layer's neurons, dead ones included (drawn only when a layer
    has any), so MF + SF + dead = 1; the band around each line is its 95 % bootstrap interval
    (``summary.csv``'s ``frac_*_ci_low``/``_high``; none without ``summary`` or intervals).
    Panel b: normalised MF degree of the layer's top MF neuron (highest) and top SF neuron (lowest).
    """
    layers = present_layers(metrics, layers)
    counts = facet_counts(metrics, layers)
    x = np.arange(len(layers))
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 2.6)
        ax_frac, ax_mf = fig.subplots(1, 2)
        facets = [MF, SF] + ([DEAD] if counts["n_dead"].sum() else [])
        for facet in facets:
            ax_frac.plot(x, counts[f"frac_{facet}"], marker="o", color=style.FACET_COLORS[facet],
                         label=style.FACET_LABELS[facet])
            style.interval_band(ax_frac, x, summary, f"frac_{facet.lower()}", layers, style.FACET_COLORS[facet])
        for i, (name, n) in enumerate(zip(layers, counts["n_neurons"])):
            if counts.at[name, "frac_dead"] == 1:
                ax_frac.annotate(f"all {n} dead", (i, 1.0), xytext=(0, -6), textcoords="offset points",
                                 rotation=90, ha="center", va="top", fontsize=7, color=style.DEAD_NOTE_COLOR)
        _finish_panel(ax_frac, layers, "fraction of the layer's neurons", "a", "MF and SF neurons per layer")

        for facet, label in ((MF, "top MF neuron (highest)"), (SF, "top SF neuron (lowest)")):
            top = top_neurons(metrics, layers, facet, 1).set_index("layer")["mf_norm"].reindex(layers)
            ax_mf.plot(x, top.to_numpy(dtype=float), marker="o", color=style.FACET_COLORS[facet], label=label)
        _finish_panel(ax_mf, layers, "MF degree (normalised)", "b", "MF degree of the top neurons")
        style.mark_dead_layers(fig, metrics, layers)
    return fig


def _finish_panel(ax, layers: Sequence[str], ylabel: str, letter: str, title: str) -> None:
    """A panel of Fig. 3: values in [0, 1] per layer, legend, panel letter and title."""
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best")
    style.set_layer_axis(ax, layers)
    style.panel_label(ax, letter)
    ax.set_title(title)


def _image_axis(ax: Axes, image: np.ndarray) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _example_rows(
    subfig: SubFigure,
    table: pd.DataFrame,
    ica: Mapping[str, IcaReader],
    patches: Mapping[str, PatchReader],
    n_patches: int,
    tile: int,
) -> None:
    n_comp = max(store.n_components for store in ica.values())
    ratios = [n_comp, n_comp, n_comp, max(n_patches, 1)]
    axes = subfig.subplots(len(table), 4, width_ratios=ratios, squeeze=False,
                           gridspec_kw={"hspace": 0.08, "wspace": 0.04})
    headers = ["gray ICs", "RGB ICs (signed)", "uint8 ICs", f"top {n_patches} patches"]
    for ax, header in zip(axes[0], headers):
        ax.set_title(header, fontsize=8)
    for row_axes, row in zip(axes, table.itertuples(index=False)):
        store = ica[row.layer]
        _, comps = next(store.iter_components([row.neuron]))
        for ax, mode in zip(row_axes[:3], ("gray", "rgb", "uint8")):
            _image_axis(ax, mosaic([list(comps[mode])], tile, columns=n_comp))
            _mark_not_converged(ax, store, row.neuron, label=mode == "gray")
        counted = min(int(patches[row.layer].n_counted[row.neuron]), n_patches)
        top = list(patches[row.layer].top([row.neuron], counted)[0]) if counted else []
        _image_axis(row_axes[3], mosaic([top], tile, columns=max(n_patches, 1)))
        p = "n/a" if pd.isna(row.p_value) else f"{row.p_value:.2g}"
        label = f"{style.layer_label(row.layer)} #{row.neuron}\nMF {row.mf_norm:.2f}  p={p}"
        row_axes[0].set_ylabel(label + _blank_note(store, row.neuron), rotation=0, ha="right", va="center",
                               fontsize=6.5, labelpad=3)


# ICA statuses whose components are missing (NaN, shown blank)
BLANK_STATUSES = ("too_few_patches", "constant", "rank_deficient")
#: Colour of the note on a neuron whose ICA fit did not converge.
WARN_COLOUR = "#b00020"


def _blank_note(store: IcaReader, neuron: int) -> str:
    """A short third label line when some of the neuron's ICs are blank, saying why."""
    status = str(store.status[neuron])
    reasons = [name for name in BLANK_STATUSES if name in status]
    return f"\nICA: {reasons[0].replace('_', ' ')}" if reasons else ""


def _mark_not_converged(ax, store: IcaReader, neuron: int, label: bool = True) -> None:
    """Frame the axis in red and say so when one of the neuron's fits did not converge:
    its pictures are kept but are not the independent components the method means."""
    if "not_converged" not in str(store.status[neuron]):
        return
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(WARN_COLOUR)
        spine.set_linewidth(1.2)
    if label:
        ax.text(0.0, -0.04, "ICA not converged", transform=ax.transAxes, ha="left", va="top", fontsize=5.5,
                color=WARN_COLOUR)


def plot_facet_examples(
    metrics: pd.DataFrame,
    layers: Sequence[str],
    ica_stores: Sequence[PathLike] | Mapping[str, PathLike],
    patch_stores: Sequence[PathLike] | Mapping[str, PathLike],
    examples_per_layer: int = 1,
    n_patches: int = 8,
    tile: int = 32,
) -> Figure:
    """Fig. 4 with Tables 2-3: the top SF and MF neurons of each layer, pictured.

    Each row is one neuron: its ICs in the three modes (gray, RGB shown signed around
    mid-grey, uint8) and its best patches, labelled with layer, neuron, normalised MF
    degree and p-value (and why, when a failed ICA fit left its ICs blank); the raw MF
    degree is in the tables (`top_neurons`). Upper block: single-faceted neurons (Table 2), lower block:
    multi-faceted neurons (Table 3).

    Parameters
    ----------
    ica_stores, patch_stores
        The layers' ``ica/{layer}.zarr`` and ``patches/{layer}.zarr`` (paths named
        ``<layer>.zarr`` or a ``{layer: path}`` mapping).
    examples_per_layer
        Top neurons per layer and facet (config ``figures.examples_per_layer``).
    n_patches, tile
        Patches shown per neuron; tile size in pixels of the embedded images.
    """
    layers = present_layers(metrics, layers)
    if n_patches < 0 or tile < 4:
        raise ValueError("n_patches must be >= 0 and tile >= 4")
    tables = {facet: top_neurons(metrics, layers, facet, examples_per_layer) for facet in (SF, MF)}
    needed = sorted(set(tables[SF]["layer"]) | set(tables[MF]["layer"]), key=layers.index)
    ica_paths, patch_paths = stores_by_layer(ica_stores), stores_by_layer(patch_stores)
    missing = [name for name in needed if name not in ica_paths or name not in patch_paths]
    if missing:
        raise ValueError(f"ICA or patch stores are missing for layers {missing}")
    ica = {name: IcaReader(ica_paths[name], patch_paths[name]) for name in needed}
    patches = {name: PatchReader(patch_paths[name]) for name in needed}
    blocks = [(facet, tables[facet]) for facet in (SF, MF) if len(tables[facet])]
    if not blocks:
        with style.paper_style():
            return style.nothing_to_show("Fig. 4: no SF or MF neuron to show.\n"
                                         + (style.dead_layers_note(metrics, layers) or "every neuron is dead"))
    # Row height from the width a tile gets: the labels take about 1 in, the four blocks
    # share the rest, so rows are as tall as their tiles (no empty bands between rows).
    n_comp = max(store.n_components for store in ica.values())
    tiles_across = 3 * n_comp + max(n_patches, 1) + 2  # + room for the gaps between blocks
    row_height = 1.25 * (style.DOUBLE_COLUMN - 1.1) / tiles_across + 0.06
    heights = [0.4 + row_height * len(t) for _, t in blocks]
    titles = {SF: "Table 2. Single-faceted neurons (lowest MF degree of each layer)",
              MF: "Table 3. Multi-faceted neurons (highest MF degree of each layer)"}
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, sum(heights))
        subfigs = np.atleast_1d(fig.subfigures(len(blocks), 1, height_ratios=heights))
        for subfig, (facet, table) in zip(subfigs, blocks):
            _example_rows(subfig, table, ica, patches, n_patches, tile)
            subfig.suptitle(titles[facet], x=0.01, ha="left", fontweight="bold",
                            color=style.FACET_COLORS[facet])
        style.mark_dead_layers(fig, metrics, layers)
    return fig


def spread_neurons(metrics: pd.DataFrame, layer: str, n: int) -> pd.DataFrame:
    """``n`` non-dead neurons of ``layer`` spread evenly over its MF ranking (min ... max).

    The neurons at ranks ``round(q (m - 1))`` for q = 0, 1/(n-1), ..., 1 among the layer's
    m live neurons sorted by MF (ties by neuron number); fewer when m < n.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rows = alive(metrics)
    rows = rows[(rows["layer"] == layer) & rows["mf"].notna()].sort_values(["mf", "neuron"], kind="stable")
    if rows.empty:
        return rows
    ranks = np.unique(np.round(np.linspace(0, len(rows) - 1, min(n, len(rows)))).astype(int))
    return rows.iloc[ranks]


def plot_ica_by_mf(
    metrics: pd.DataFrame,
    layers: Sequence[str],
    ica_stores: Sequence[PathLike] | Mapping[str, PathLike],
    per_layer: int = 5,
    tile: int = 32,
    patch_stores: Sequence[PathLike] | Mapping[str, PathLike] | None = None,
) -> Figure:
    """Appendix B: uint8 ICs of neurons spread over each layer's MF range, low to high.

    One row per layer; in it, ``per_layer`` neurons from the lowest to the highest MF
    degree (see `spread_neurons`), each titled with its number and normalised MF;
    a neuron with a fit that did not converge is framed in red. ``patch_stores``: the
    layers' patch stores (default: the ones the ICA stores record).
    """
    layers = present_layers(metrics, layers)
    ica_paths = stores_by_layer(ica_stores)
    patch_paths = stores_by_layer(patch_stores) if patch_stores is not None else {}
    chosen = {name: spread_neurons(metrics, name, per_layer) for name in layers}
    shown = [name for name in layers if len(chosen[name])]
    if not shown:
        with style.paper_style():
            return style.nothing_to_show("Appendix B: no live neuron to show.\n"
                                         + (style.dead_layers_note(metrics, layers) or "every neuron is dead"))
    missing = [name for name in shown if name not in ica_paths]
    if missing:
        raise ValueError(f"ICA stores are missing for layers {missing}")
    columns = max(len(chosen[name]) for name in shown)
    with style.paper_style():
        first = IcaReader(ica_paths[shown[0]], patch_paths.get(shown[0]))
        g_rows, g_cols = grid_shape(first.n_components, 4)
        cell_h = style.DOUBLE_COLUMN / columns * g_rows / g_cols
        fig = style.new_figure(style.DOUBLE_COLUMN, 0.3 + len(shown) * (cell_h + 0.25))
        axes = fig.subplots(len(shown), columns, squeeze=False, gridspec_kw={"hspace": 0.05, "wspace": 0.05})
        for row_axes, name in zip(axes, shown):
            store = IcaReader(ica_paths[name], patch_paths.get(name))
            g_rows, g_cols = grid_shape(store.n_components, 4)
            table = chosen[name]
            comps = store.components("uint8", table["neuron"].tolist())
            for ax, comp, row in zip(row_axes, comps, table.itertuples(index=False)):
                tiles = list(comp)
                _image_axis(ax, mosaic([tiles[i:i + g_cols] for i in range(0, len(tiles), g_cols)], tile,
                                       columns=g_cols))
                ax.set_title(f"#{row.neuron}  MF {row.mf_norm:.2f}", fontsize=7)
                _mark_not_converged(ax, store, row.neuron)
            for ax in row_axes[len(table):]:
                ax.remove()
            row_axes[0].set_ylabel(style.layer_label(name), rotation=0, ha="right", va="center")
        style.mark_dead_layers(fig, metrics, layers,
                               title="ICs (uint8) of neurons from the lowest to the highest MF degree of each layer")
    return fig
