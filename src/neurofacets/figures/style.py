"""The one shared look of every figure: fonts, sizes, colours, layer order and labels.

Every plotting function of `neurofacets.figures` builds a
`matplotlib.figure.Figure` directly (no ``pyplot``: no global figure state, no GUI
backend) inside `paper_style`, and every figure file is written by
`save_figure`. Sizes are in inches at the size a two-column paper prints them
(`SINGLE_COLUMN`, `DOUBLE_COLUMN`), with 7-9 pt text, so what is legible on
screen is legible on paper.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, to_hex
from matplotlib.figure import Figure

from ..pathlike import PathLike
from ..readers import DEAD, MF, SF
from ..store import atomic_output

SINGLE_COLUMN = 3.5  # inches: one column of a two-column paper
DOUBLE_COLUMN = 7.2  # inches: full text width

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies and in grey.
FACET_COLORS = {MF: "#D55E00", SF: "#0072B2", DEAD: "#999999"}
FACET_LABELS = {MF: "multi-faceted (MF)", SF: "single-faceted (SF)", DEAD: DEAD}
SPARSITY_COLOR = "#56B4E9"  # sky blue: high sparsity goes with SF (blue)
FLATNESS_COLOR = "#E69F00"  # orange: high flatness goes with MF (vermillion)
SIMILARITY_COLOR = "#009E73"
DISSIMILARITY_COLOR = "#CC79A7"
LAYER_CMAP = "viridis"  # layer depth: dark = shallow, yellow = deep
PEARSON_CMAP = "RdBu_r"  # diverging around r = 0
EUCLIDEAN_CMAP = "magma"
MISSING_COLOR = "#d9d9d9"  # excluded neurons in heatmaps
DEAD_NOTE_COLOR = "#B00000"  # the warning that a layer's neurons are all dead

RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "image.interpolation": "nearest",
    # No "savefig.bbox: tight": constrained layout already fits everything inside the
    # figure, and a tight bbox costs a second full draw (about 30 % of a save).
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    # TrueType fonts in PDF/PS and real text in SVG: editable and searchable.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "neurofacets",  # deterministic SVG ids
}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Apply `RC` for the duration of the block (build and save figures inside it)."""
    with mpl.rc_context(RC):
        yield


def new_figure(width: float, height: float, **kwargs) -> Figure:
    """A figure of ``width`` x ``height`` inches using constrained layout."""
    return Figure(figsize=(width, height), layout=kwargs.pop("layout", "constrained"), **kwargs)


def layer_label(layer: str) -> str:
    """The label shown for a layer: its name, with long module paths shortened in the middle.

    VGG names (``conv3_1``) are kept; other models' names are module paths with dots
    replaced by ``-`` (``layer3-1-conv2``), shortened to at most 16 characters so tick
    labels stay readable.
    """
    if len(layer) <= 16:
        return layer
    return f"{layer[:7]}…{layer[-8:]}"


def layer_colors(n_layers: int) -> list[str]:
    """One colour per layer along `LAYER_CMAP`, shallow to deep."""
    if n_layers < 1:
        raise ValueError("n_layers must be at least 1")
    cmap = mpl.colormaps[LAYER_CMAP]
    # Stop short of the palest end so the deepest layer stays visible on white.
    return [to_hex(cmap(x)) for x in np.linspace(0.0, 0.9, n_layers)]


def set_layer_axis(ax: Axes, layers: Sequence[str], axis: str = "x") -> None:
    """Put the layers at positions 0..L-1 of ``axis`` with readable, non-overlapping labels."""
    labels = [layer_label(name) for name in layers]
    positions = np.arange(len(layers))
    # Rotate once the labels would touch: about 5 labels of 7 chars fit one column width.
    rotate = len(layers) > 5 or max((len(s) for s in labels), default=0) > 8
    if axis == "x":
        ax.set_xticks(positions, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                      rotation_mode="anchor")
        ax.set_xlim(-0.6, len(layers) - 0.4)
        ax.set_xlabel("layer")
    elif axis == "y":
        ax.set_yticks(positions, labels)
        ax.set_ylim(len(layers) - 0.4, -0.6)
        ax.set_ylabel("layer")
    else:
        raise ValueError(f"axis must be 'x' or 'y', not {axis!r}")


def all_dead_layers(metrics: pd.DataFrame, layers: Sequence[str]) -> dict[str, int]:
    """``{layer: number of neurons}`` of the ``layers`` whose every neuron is ``dead``, in order."""
    facets = metrics.groupby("layer", sort=False)["facet"]
    dead = facets.apply(lambda f: bool((f == DEAD).all())).to_dict()
    sizes = facets.size().to_dict()
    return {name: int(sizes[name]) for name in layers if dead.get(name, False)}


def dead_layers_note(metrics: pd.DataFrame, layers: Sequence[str]) -> str | None:
    """The warning a figure shows when layers have no live neuron, or None.

    ``layer conv2_1: all 64 neurons dead (no positive activation on any image), nothing to
    draw for it``, one line per such layer (at most 5, then how many more).
    """
    found = all_dead_layers(metrics, layers)
    if not found:
        return None
    lines = [f"layer {name}: all {n} neurons dead" for name, n in found.items()]
    if len(lines) > 5:
        lines = lines[:5] + [f"and {len(lines) - 5} more layers with every neuron dead"]
    return "\n".join(lines) + "\n(no positive activation on any image: no sparsity, flatness or MF degree to draw)"


def mark_dead_layers(fig: Figure, metrics: pd.DataFrame, layers: Sequence[str], title: str | None = None) -> None:
    """Put `dead_layers_note` above the figure (after ``title``, if the figure has one)."""
    note = dead_layers_note(metrics, layers)
    if note is None and title is None:
        return
    text = "\n".join(part for part in (title, note) if part)
    fig.suptitle(text, x=0.01, ha="left", fontsize=8 if title is None else None,
                 color=DEAD_NOTE_COLOR if title is None else None)


def nothing_to_show(message: str) -> Figure:
    """A figure holding only ``message``: what is drawn when no neuron has anything to show."""
    fig = new_figure(DOUBLE_COLUMN, 1.2)
    fig.text(0.02, 0.5, message, ha="left", va="center", fontsize=9, color=DEAD_NOTE_COLOR, wrap=True)
    return fig


INTERVAL_ALPHA = 0.2  # the band of a 95 % interval, in its line's colour


def interval_of(summary: pd.DataFrame | None, column: str,
                layers: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """``column``'s 95 % interval per layer (``X_ci_low``, ``X_ci_high`` of a summary), or None.

    None when there is no summary, it lacks the columns, or every interval is empty
    (``analysis.bootstrap: 0``): the figure then draws the numbers alone.
    """
    if summary is None or f"{column}_ci_low" not in summary.columns:
        return None
    table = summary.set_index("layer").reindex(list(layers))
    low = table[f"{column}_ci_low"].to_numpy(dtype=float)
    high = table[f"{column}_ci_high"].to_numpy(dtype=float)
    return (low, high) if np.isfinite(low).any() else None


def interval_band(ax: Axes, x: np.ndarray, summary: pd.DataFrame | None, column: str, layers: Sequence[str],
                  color: str) -> None:
    """Shade ``column``'s 95 % interval per layer (`interval_of`) around its line."""
    found = interval_of(summary, column, layers)
    if found is not None:
        ax.fill_between(x, *found, color=color, alpha=INTERVAL_ALPHA, linewidth=0)


def panel_label(ax: Axes, letter: str) -> None:
    """The panel letter (a, b, ...) in bold at the top left, outside the axes."""
    ax.set_title(f"{letter})", loc="left", fontweight="bold")


def colormap(name: str) -> Colormap:
    """A copy of a named colormap whose NaN cells show as `MISSING_COLOR`."""
    return mpl.colormaps[name].with_extremes(bad=MISSING_COLOR)


FIGURE_FORMATS = ("pdf", "png", "svg")


def save_figure(fig: Figure, paths: Sequence[PathLike], dpi: int) -> list[Path]:
    """Write ``fig`` to each path, the format taken from the suffix, each file atomically.

    Metadata that changes between runs (creation date, software version) is left out so
    the same data give byte-identical PDFs and PNGs.
    """
    if dpi < 1:
        raise ValueError(f"dpi must be positive, got {dpi}")
    written = []
    for path in paths:
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower()
        if fmt not in FIGURE_FORMATS:
            raise ValueError(f"{path}: unsupported figure format {fmt!r}; use one of {FIGURE_FORMATS}")
        metadata = {"pdf": {"CreationDate": None, "Producer": None},
                    "png": {"Software": None},
                    "svg": {"Date": None}}[fmt]
        with paper_style(), atomic_output(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
        written.append(path)
    return written
