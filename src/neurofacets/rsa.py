"""Class geometry per layer (class RDM) and its change over depth (layer x layer RSA).

**Class RDM** of a layer: ``1 - Pearson`` between the CoF *columns* (each class described
by how many of its images each neuron counts in its top-k), a (classes x classes) matrix.
A class whose column has zero variance (e.g. no image of it in any top-k set) has no
correlation; its row and column are NaN and it is marked ``excluded``.

**RSA**: Spearman rank correlation between the upper triangles (diagonal left out) of two
layers' class RDMs, over the class pairs that are defined (finite) in both.

Store ``rdm/{layer}.zarr`` (xarray Dataset): ``rdm`` float64 (class_i, class_j),
``excluded`` bool (class_i), coordinates ``name_i``/``name_j`` (class names; they need not
be unique), attrs ``layer``, ``level``, ``n_excluded``, provenance.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .logs import timed
from .pathlike import PathLike
from .similarity import pearson_rows, zero_variance_rows

logger = logging.getLogger(__name__)

MIN_PAIRS = 3  # fewest class pairs a rank correlation is computed from


def class_rdm(cof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class RDM ``1 - Pearson(CoF[:, a], CoF[:, b])`` of one layer.

    Parameters
    ----------
    cof
        (neurons, classes) counts; at least 2 neurons.

    Returns
    -------
    rdm
        float64 (classes, classes), diagonal 0, NaN rows/columns for excluded classes.
    excluded
        bool (classes,): columns with zero variance.
    """
    cof = np.asarray(cof)
    if cof.ndim != 2 or cof.shape[0] < 2:
        raise ValueError(f"cof must be (neurons >= 2, classes), got shape {cof.shape}")
    columns = cof.T
    excluded = zero_variance_rows(columns)
    rdm = 1.0 - pearson_rows(columns)
    return rdm, excluded


def upper_triangle(matrix: np.ndarray) -> np.ndarray:
    """The entries above the diagonal, row by row."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {matrix.shape}")
    return matrix[np.triu_indices(len(matrix), k=1)]


def rsa_matrix(rdms: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Layer x layer Spearman correlation of the class RDMs' upper triangles.

    Each pair of layers is compared over the class pairs finite in both RDMs; fewer than
    `MIN_PAIRS` such pairs, or a constant triangle, give NaN.

    Parameters
    ----------
    rdms
        ``{layer: (classes, classes) RDM}`` in the order wanted for rows and columns; all
        of the same size (same classes).

    Returns
    -------
    pd.DataFrame
        Square, index and columns the layer names.
    """
    if not rdms:
        raise ValueError("no RDMs given")
    names = list(rdms)
    sizes = {np.shape(r) for r in rdms.values()}
    if len(sizes) != 1:
        raise ValueError(f"RDMs differ in shape: {sorted(sizes)}")
    from scipy import stats  # here, not at import: only the rsa job correlates RDMs

    vectors = [upper_triangle(rdms[n]) for n in names]
    out = np.full((len(names), len(names)), np.nan)
    for i in range(len(names)):
        for j in range(i, len(names)):
            a, b = vectors[i], vectors[j]
            both = np.isfinite(a) & np.isfinite(b)
            if both.sum() < MIN_PAIRS:
                continue
            a, b = a[both], b[both]
            if np.all(a == a[0]) or np.all(b == b[0]):
                continue  # a constant ranking has no correlation
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", stats.ConstantInputWarning)
                out[i, j] = out[j, i] = stats.spearmanr(a, b).statistic
    return pd.DataFrame(out, index=pd.Index(names, name="layer"), columns=names)


def rdm_dataset(
    layer: str,
    rdm: np.ndarray,
    excluded: np.ndarray,
    names: Sequence[str],
    level: str,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The xarray Dataset written to ``rdm/{layer}.zarr``."""
    n = len(names)
    if rdm.shape != (n, n) or excluded.shape != (n,):
        raise ValueError(f"rdm {rdm.shape} / excluded {excluded.shape} do not fit {n} names")
    labels = np.array(list(names), dtype=object)
    ds = xr.Dataset(
        {"rdm": (("class_i", "class_j"), rdm), "excluded": (("class_i",), excluded)},
        coords={
            "class_i": np.arange(n),
            "class_j": np.arange(n),
            "name_i": ("class_i", labels),
            "name_j": ("class_j", labels),
        },
    )
    ds.attrs.update(
        {
            **(attrs or {}),
            "layer": layer,
            "level": level,
            "n_excluded": int(excluded.sum()),
            "definition": "1 - Pearson correlation between CoF columns; zero-variance columns NaN",
        }
    )
    return ds


@timed("read")
def read_rdm(path: PathLike) -> np.ndarray:
    """The ``rdm`` matrix of a store of `rdm_dataset`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"RDM store {path} does not exist")
    with xr.open_zarr(path, consolidated=False) as ds:
        return ds["rdm"].values
