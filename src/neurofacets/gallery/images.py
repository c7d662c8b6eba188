"""The gallery's pictures: one card image per neuron, the similarity heatmaps, the layer overview.

Thumbnails: one composite PNG per neuron (3 rows of tiles). ``<img loading="lazy">``
only defers ``<img>`` elements, not CSS backgrounds, so a per-layer sprite sheet would
make the browser fetch and decode the whole layer's sheet (512 neurons x 24 tiles of
40 px: about 20 megapixels, 80 MB decoded) before painting the first card. One image per
card is fetched only when the card scrolls into view, and keeps the file count at one
per neuron (4224 for VGG16) instead of one per tile (100 000).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from PIL import Image

from ..figures import style
from ..figures.images import mosaic
from ..ica import IcaReader
from ..patches import PatchReader
from ..pathlike import PathLike
from ..readers import DEAD, MF, SF

TILE = 40  # px per IC / patch tile in a card image
GAP = 2  # px between tiles
BLOCK = 16  # neurons read from a store at once (conv5 patches: 16 x 8 x 196^2 x 3 = 15 MB)


def card_name(neuron: int, width: int) -> str:
    """File name of a neuron's card image, its number zero-padded to ``width`` digits."""
    return f"n{neuron:0{width}d}.png"


def neuron_strip(
    gray: np.ndarray,
    ics_uint8: np.ndarray,
    patches: np.ndarray,
    tile: int = TILE,
    columns: int | None = None,
) -> np.ndarray:
    """One card image: row 1 gray ICs (signed), row 2 uint8 ICs, row 3 top patches.

    Parameters
    ----------
    gray
        (comps, rf, rf) float ICs.
    ics_uint8
        (comps, rf, rf, 3) uint8 ICs.
    patches
        (m, rf, rf, 3) uint8, the patches to show (may be empty).
    tile
        Tile size in pixels (every IC and patch is resized to it).
    columns
        Tiles per row (default: the longest row).
    """
    rows = [list(gray), list(ics_uint8), list(patches)]
    width = columns if columns is not None else max(len(r) for r in rows)
    return mosaic(rows, tile, gap=GAP, columns=max(width, 1))


def write_card_images(
    ica: IcaReader,
    patches: PatchReader,
    out_dir: PathLike,
    n_patches: int,
    tile: int = TILE,
) -> tuple[int, int, int]:
    """Write ``out_dir/nNNNN.png`` for every neuron; return (name width, image width, height).

    Stores are read ``BLOCK`` neurons at a time so memory stays small for any layer.
    """
    if ica.n_neurons != patches.n_neurons:
        raise ValueError(f"ICA store has {ica.n_neurons} neurons, patch store {patches.n_neurons}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = ica.n_neurons
    width = max(4, len(str(n - 1)))
    n_patches = min(n_patches, patches.k)
    columns = max(ica.n_components, n_patches, 1)
    shape = None
    for start in range(0, n, BLOCK):
        block = slice(start, min(n, start + BLOCK))
        pictures = dict(ica.iter_components(range(block.start, block.stop)))  # all modes at once
        tops = patches.top(block, n_patches) if n_patches else None
        for i, neuron in enumerate(range(block.start, block.stop)):
            counted = min(int(patches.n_counted[neuron]), n_patches)
            shown = tops[i, :counted] if tops is not None and counted else np.zeros((0, 1, 1, 3), np.uint8)
            strip = neuron_strip(pictures[neuron]["gray"], pictures[neuron]["uint8"], shown, tile, columns)
            shape = strip.shape
            # compress_level 3: about 1.2x faster over a VGG16 gallery than the default 6
            # at the same size (benchmarks/figures.py): zlib effort buys little on photos.
            Image.fromarray(strip).save(out_dir / card_name(neuron, width), compress_level=3)
    if shape is None:
        raise ValueError("the layer has no neurons")
    return width, shape[1], shape[0]


def heatmap_image(matrix: np.ndarray, cmap_name: str, norm: Normalize) -> np.ndarray:
    """A matrix as a uint8 RGB image, one pixel per cell, NaN in the missing colour."""
    cmap = style.colormap(cmap_name)
    return cmap(norm(np.ma.masked_invalid(np.asarray(matrix, dtype=float))), bytes=True)[..., :3]


def write_layer_overview(table: pd.DataFrame, layer: str, path: Path) -> None:
    """Histograms of the layer's normalised MF degree (by facet), sparsity and flatness."""
    live = table[table["facet"] != DEAD]
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 1.9)
        axes = fig.subplots(1, 3)
        bins = np.linspace(0, 1, 26)
        data = [live.loc[live["facet"] == f, "mf_norm"].dropna().to_numpy() for f in (SF, MF)]
        axes[0].hist(data, bins=bins, stacked=True, color=[style.FACET_COLORS[SF], style.FACET_COLORS[MF]],
                     label=[SF, MF])
        axes[0].legend(loc="upper right")
        axes[0].set_xlabel("MF degree (normalised)")
        axes[0].set_ylabel("neurons")
        for ax, column, color in ((axes[1], "sparsity", style.SPARSITY_COLOR),
                                  (axes[2], "flatness", style.FLATNESS_COLOR)):
            values = live[column].dropna().to_numpy(dtype=float)
            if values.size:
                ax.hist(values, bins=25, color=color, alpha=0.8)
            ax.set_xlabel(column)
        fig.suptitle(f"{layer}: {len(live)} live neurons", x=0.01, ha="left")
        style.save_figure(fig, [path], dpi=100)
