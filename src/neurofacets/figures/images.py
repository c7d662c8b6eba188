"""Turning ICs and patches into small display tiles and mosaics (figures and gallery).

Display conventions (the same in the paper figures and the gallery):

- ``gray`` and ``rgb`` ICs are float sources with an arbitrary scale whose sign was fixed
  upstream (positive correlation with the mean patch). They are shown *signed*: 0 is
  mid-grey, the largest absolute value of the component (over all its channels) is black
  or white, so polarity and the relative strength of the colour channels stay visible.
- ``uint8`` ICs and patches are already images and are shown as they are.
- Missing values (a dead neuron's NaN components) show as mid-grey.

Tiles are resized to a fixed size: receptive fields of 3 px are enlarged with nearest
neighbour (the pixels stay sharp), 196 px ones are reduced with Lanczos filtering.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

GREY = 128


def signed_to_uint8(component: np.ndarray) -> np.ndarray:
    """A float IC (rf, rf) or (rf, rf, 3) as uint8 RGB, 0 -> mid-grey, max |x| -> 0 or 255."""
    x = np.asarray(component, dtype=np.float64)
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[-1] != 3):
        raise ValueError(f"expected an (rf, rf) or (rf, rf, 3) component, got shape {x.shape}")
    finite = np.isfinite(x)
    scale = np.max(np.abs(x[finite])) if finite.any() else 0.0
    unit = np.full(x.shape, 0.5) if scale == 0 else 0.5 + np.where(finite, x, 0.0) / (2 * scale)
    out = np.clip(np.round(unit * 255), 0, 255).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=-1)
    return out


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any tile source as uint8 RGB: uint8 images as they are, float ICs signed."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        if image.ndim == 2:
            return np.repeat(image[..., None], 3, axis=-1)
        if image.ndim == 3 and image.shape[-1] == 3:
            return image
        raise ValueError(f"expected a uint8 (h, w) or (h, w, 3) image, got shape {image.shape}")
    return signed_to_uint8(image)


def resize_tile(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 RGB image resized to ``size`` x ``size`` (nearest when enlarging)."""
    if size < 1:
        raise ValueError(f"tile size must be positive, got {size}")
    image = as_rgb_uint8(image)
    if image.shape[0] == size and image.shape[1] == size:
        return image
    enlarge = max(image.shape[:2]) < size
    method = Image.Resampling.NEAREST if enlarge else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(image).resize((size, size), method))


def mosaic(
    rows: Sequence[Sequence[np.ndarray]],
    size: int,
    *,
    gap: int = 1,
    columns: int | None = None,
    background: int = 255,
) -> np.ndarray:
    """Tiles in rows: ``rows[i][j]`` -> one uint8 RGB image, each tile ``size`` px square.

    Rows may differ in length; the mosaic is ``columns`` tiles wide (default: the longest
    row) and short rows are padded with ``background``.
    """
    if not rows:
        raise ValueError("mosaic needs at least one row")
    width_tiles = columns if columns is not None else max(len(r) for r in rows)
    width_tiles = max(width_tiles, 1)
    step = size + gap
    out = np.full((len(rows) * step - gap, width_tiles * step - gap, 3), background, dtype=np.uint8)
    for i, row in enumerate(rows):
        if len(row) > width_tiles:
            raise ValueError(f"row {i} has {len(row)} tiles, more than the {width_tiles} columns")
        for j, tile in enumerate(row):
            out[i * step:i * step + size, j * step:j * step + size] = resize_tile(tile, size)
    return out


def grid_shape(n: int, max_columns: int) -> tuple[int, int]:
    """(rows, columns) of the most square-ish grid of at most ``max_columns`` columns for n items."""
    if n < 1 or max_columns < 1:
        raise ValueError("grid_shape needs n >= 1 and max_columns >= 1")
    columns = min(n, max_columns)
    return -(-n // columns), columns
