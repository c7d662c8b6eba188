"""Neuron similarity within a layer: Pearson correlation and Euclidean distance of CoF rows.

Rows with zero variance (dead neurons, or a row equal in every class) have no correlation
with anything; they are *excluded*: their rows and columns are NaN in both matrices (so
both summaries average over the same neurons) and they are counted.

Store ``similarity/{layer}.zarr`` (xarray Dataset):

- ``pearson``, ``euclidean`` float64 (neuron_i, neuron_j), NaN rows/columns for excluded
  neurons, diagonal 1 and 0 for the others;
- ``excluded`` bool (neuron_i);
- attrs: ``layer``, ``level``, ``n_excluded``, ``n_neurons``, provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from .readers import Similarity


def _as_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-d (items, features) array, got shape {rows.shape}")
    if rows.shape[1] < 2:
        raise ValueError(f"at least 2 features per row are needed, got {rows.shape[1]}")
    if not np.all(np.isfinite(rows)):
        raise ValueError("rows must be finite")
    return rows.astype(np.float64)


def zero_variance_rows(rows: np.ndarray) -> np.ndarray:
    """Boolean (items,): rows whose entries are all equal."""
    rows = np.asarray(rows)
    return np.all(rows == rows[:, :1], axis=1)


def pearson_rows(rows: np.ndarray) -> np.ndarray:
    """Pearson correlation between rows; NaN rows/columns for zero-variance rows.

    The diagonal of a non-constant row is exactly 1.
    """
    x = _as_rows(rows)
    constant = zero_variance_rows(x)
    centred = x - x.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", centred, centred))
    norms[constant] = np.nan
    unit = centred / norms[:, None]
    corr = unit @ unit.T
    np.clip(corr, -1.0, 1.0, out=corr)  # rounding can leave |r| a hair above 1
    idx = np.flatnonzero(~constant)
    corr[idx, idx] = 1.0
    return corr


def euclidean_rows(rows: np.ndarray) -> np.ndarray:
    """Euclidean distance between rows (all rows, no exclusion).

    Computed from the Gram matrix (``|a|^2 + |b|^2 - 2 a.b``): with integer counts every
    term is an integer that float64 holds exactly, so the distances equal a direct
    computation; the diagonal is exactly 0.
    """
    x = _as_rows(rows)
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.clip(d2, 0.0, None, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def neuron_similarity(rows: np.ndarray) -> Similarity:
    """Pearson and Euclidean matrices of CoF rows with zero-variance rows excluded (NaN)."""
    x = _as_rows(rows)
    excluded = zero_variance_rows(x)
    pearson = pearson_rows(x)
    euclidean = euclidean_rows(x)
    euclidean[excluded, :] = np.nan
    euclidean[:, excluded] = np.nan
    return Similarity(pearson, euclidean, excluded)


def mean_off_diagonal(matrix: np.ndarray, excluded: np.ndarray) -> float:
    """Mean of the off-diagonal entries among the non-excluded items (NaN if fewer than 2)."""
    keep = np.flatnonzero(~np.asarray(excluded, dtype=bool))
    if len(keep) < 2:
        return float("nan")
    sub = matrix[np.ix_(keep, keep)]
    off = ~np.eye(len(keep), dtype=bool)
    return float(sub[off].mean())


def neighbours(matrix: np.ndarray, count: int, largest: bool) -> list[list[tuple[int, float]]]:
    """Per neuron (row), the ``count`` other neurons with the largest (or smallest) finite values.

    Parameters
    ----------
    matrix
        (neurons, neurons) similarity (``largest=True``, e.g. Pearson) or dissimilarity
        (``largest=False``, e.g. Euclidean) matrix; NaN marks excluded pairs.
    count
        Neighbours per neuron (fewer where a row has fewer finite off-diagonal values).
    largest
        Rank by decreasing value (most similar first) instead of increasing.

    Returns
    -------
    list of list of (int, float)
        Row ``i``: ``(neuron j, matrix[i, j])`` best first. Ties go to the lower neuron
        number; the diagonal and NaN entries are skipped.
    """
    values = np.array(matrix, dtype=float)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"expected a square (neurons, neurons) matrix, got shape {values.shape}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    np.fill_diagonal(values, np.nan)
    result = []
    for row in values:
        finite = np.flatnonzero(np.isfinite(row))
        key = -row[finite] if largest else row[finite]
        order = finite[np.lexsort((finite, key))][:count]
        result.append([(int(j), float(row[j])) for j in order])
    return result


def similarity_dataset(layer: str, sim: Similarity, level: str, attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The xarray Dataset written to ``similarity/{layer}.zarr``."""
    n = len(sim.excluded)
    dims = ("neuron_i", "neuron_j")
    ds = xr.Dataset(
        {
            "pearson": (dims, sim.pearson),
            "euclidean": (dims, sim.euclidean),
            "excluded": (("neuron_i",), sim.excluded),
        },
        coords={"neuron_i": np.arange(n), "neuron_j": np.arange(n)},
    )
    ds.attrs.update(
        {
            **(attrs or {}),
            "layer": layer,
            "level": level,
            "n_neurons": n,
            "n_excluded": sim.n_excluded,
            "excluded_rule": "CoF rows with zero variance (dead or equal in every class): NaN rows and columns",
        }
    )
    return ds

