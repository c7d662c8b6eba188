"""Reading the upstream stages' tables and stores: the one place that knows their formats.

Figures, gallery and summary read everything through this module (DESIGN.md §2), so a
change of a column or array name upstream is a change here only:

- ``model/layers.csv``: ``layer`` (+ geometry); row order is network order.
- ``metrics/{layer}.csv`` / ``metrics/all_layers.csv``: :data:`METRIC_COLUMNS`, plus
  :data:`ALL_LAYER_COLUMNS` in the latter. Dead neurons: sparsity NaN, flatness -1, mf NaN.
- ``similarity/{layer}.zarr`` (xarray): ``pearson``, ``euclidean`` (neuron x neuron,
  NaN rows for excluded neurons), ``excluded`` (neuron,) bool; ``similarity/summary.csv``.
- ``patches/{layer}.zarr``: read through :class:`neurofacets.patches.PatchReader`
  (either store layout), ``n_counted``.
- ``ica/{layer}.zarr``: read through :class:`neurofacets.ica.IcaReader`: the ICs in the
  modes ``gray`` (neurons, comps, side, side), ``rgb`` (..., 3) float32 and ``uint8``,
  computed from the stored unmixing matrices and the patch store; per-neuron status text.

Stores are opened lazily: a caller reads a block of neurons at a time, never a whole
layer's patches (VGG16 conv5: 512 x 100 x 196 x 196 x 3 bytes = 5.9 GB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..ica import IcaReader
from ..patches import PatchReader

from ..metrics import parse_top_classes  # noqa: F401  (the one reader of the top_classes cells)

METRIC_COLUMNS = (
    "layer", "neuron", "n_counted", "sparsity", "flatness", "mf", "p_value", "p_empirical", "top_classes",
)
ALL_LAYER_COLUMNS = (*METRIC_COLUMNS, "mf_norm", "facet")
SIMILARITY_SUMMARY_COLUMNS = ("layer", "mean_similarity", "mean_dissimilarity", "n_excluded")
SEMANTICS_SUMMARY_COLUMNS = (
    "run", "layer", "layer_index", "depth", "frac_SF", "frac_concept", "frac_MF", "frac_dead",
    "mean_concept_depth", "mean_spread", "chance_spread", "null_frac_SF", "null_frac_concept", "null_frac_MF",
    "null_mean_concept_depth",
)
FACETS = ("MF", "SF", "dead")


def _read_csv(path: str | Path, required: Sequence[str], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    table = pd.read_csv(path, keep_default_na=True)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: {what} lacks the columns {missing}; it has {list(table.columns)}")
    return table


def read_layers(path: str | Path) -> pd.DataFrame:
    """``model/layers.csv`` in network order (row order), with unique layer names."""
    table = _read_csv(path, ["layer"], "layer table")
    table["layer"] = table["layer"].astype(str)
    duplicated = table["layer"][table["layer"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"{path}: layers listed twice: {duplicated}")
    if table.empty:
        raise ValueError(f"{path}: no layers")
    return table.reset_index(drop=True)


def layer_order(path: str | Path) -> list[str]:
    """Layer names of ``model/layers.csv`` in network order."""
    return read_layers(path)["layer"].tolist()


def _order_by_layers(table: pd.DataFrame, layers: Sequence[str] | None, path: Path) -> pd.DataFrame:
    table["layer"] = table["layer"].astype(str)
    present = list(dict.fromkeys(table["layer"]))
    if layers is None:
        layers = present  # keep the table's own (first appearance) order
    unknown = [name for name in present if name not in layers]
    if unknown:
        raise ValueError(f"{path}: layers {unknown} are not in the network's layer list {list(layers)}")
    rank = {name: i for i, name in enumerate(layers)}
    table["layer_index"] = table["layer"].map(rank).astype(int)
    sort = ["layer_index", "neuron"] if "neuron" in table.columns else ["layer_index"]
    return table.sort_values(sort, kind="stable").reset_index(drop=True)


def read_metrics(path: str | Path, layers: Sequence[str] | None = None, *, all_layers: bool = True) -> pd.DataFrame:
    """A metrics table sorted by network order, then neuron, with a ``layer_index`` column.

    Parameters
    ----------
    path
        ``metrics/all_layers.csv`` (``all_layers=True``: needs ``mf_norm`` and ``facet``)
        or ``metrics/{layer}.csv``.
    layers
        Layer names in network order; every layer of the table must be among them.
    """
    path = Path(path)
    required = ALL_LAYER_COLUMNS if all_layers else METRIC_COLUMNS
    table = _read_csv(path, required, "metrics table")
    table["neuron"] = table["neuron"].astype(int)
    table["n_counted"] = table["n_counted"].astype(int)
    table["top_classes"] = table["top_classes"].fillna("").astype(str)
    if all_layers:
        bad = sorted(set(table["facet"].astype(str)) - set(FACETS))
        if bad:
            raise ValueError(f"{path}: unknown facet values {bad}; expected {FACETS}")
    if table.duplicated(["layer", "neuron"]).any():
        raise ValueError(f"{path}: a (layer, neuron) pair appears twice")
    return _order_by_layers(table, layers, path)


def present_layers(table: pd.DataFrame, layers: Sequence[str]) -> list[str]:
    """The layers of ``layers`` (network order) that have rows in ``table``.

    Raises if ``layers`` is empty or the table holds a layer that is not in it.
    """
    if not len(layers):
        raise ValueError("no layers given")
    present = set(table["layer"])
    unknown = present - set(layers)
    if unknown:
        raise ValueError(f"the table holds layers {sorted(unknown)} that are not in the layer list {list(layers)}")
    return [name for name in layers if name in present]


def stores_by_layer(paths: Sequence[str | Path] | Mapping[str, str | Path]) -> dict[str, Path]:
    """``{layer: path}`` from a mapping, or from store paths named ``<layer>.zarr``."""
    if isinstance(paths, Mapping):
        return {str(k): Path(v) for k, v in paths.items()}
    return {Path(p).stem: Path(p) for p in paths}


def _read_layer_summary(path: str | Path, columns: Sequence[str], what: str,
                        layers: Sequence[str] | None) -> pd.DataFrame:
    """A table with one row per layer, in network order, with a ``layer_index`` column."""
    path = Path(path)
    table = _read_csv(path, columns, what)
    if table["layer"].duplicated().any():
        raise ValueError(f"{path}: a layer appears twice")
    return _order_by_layers(table, layers, path)


def read_similarity_summary(path: str | Path, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """``similarity/summary.csv`` in network order, with a ``layer_index`` column."""
    return _read_layer_summary(path, SIMILARITY_SUMMARY_COLUMNS, "similarity summary", layers)


def read_semantics_summary(path: str | Path, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """``semantics/summary.csv`` (:mod:`neurofacets.semantics.stage`) in network order."""
    return _read_layer_summary(path, SEMANTICS_SUMMARY_COLUMNS, "semantics summary", layers)


def read_semantics_summaries(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several runs' ``semantics/summary.csv`` stacked; the run names must differ."""
    if not paths:
        raise ValueError("no semantics summary given")
    tables = [read_semantics_summary(p) for p in paths]
    runs = [str(t["run"].iloc[0]) for t in tables if len(t)]
    if len(set(runs)) != len(runs):
        raise ValueError(f"runs {sorted(runs)} repeat across the semantics summaries; run names must differ")
    return pd.concat(tables, ignore_index=True)


@dataclass(frozen=True)
class Similarity:
    """One layer's neuron x neuron matrices (NaN rows/columns for excluded neurons)."""

    pearson: np.ndarray  # float (neurons, neurons)
    euclidean: np.ndarray  # float (neurons, neurons)
    excluded: np.ndarray  # bool (neurons,)

    @property
    def n_neurons(self) -> int:
        return len(self.excluded)


def read_similarity(path: str | Path) -> Similarity:
    """Read ``similarity/{layer}.zarr`` (one layer: 512 x 512 float64 is 2 MB per matrix)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"similarity store {path} does not exist")
    # consolidated=False: upstream writes none, and plain metadata is always there.
    with xr.open_zarr(path, consolidated=False) as ds:
        for name in ("pearson", "euclidean", "excluded"):
            if name not in ds:
                raise ValueError(f"{path}: similarity store lacks {name!r}; it has {list(ds.data_vars)}")
        pearson = np.asarray(ds["pearson"].values, dtype=float)
        euclidean = np.asarray(ds["euclidean"].values, dtype=float)
        excluded = np.asarray(ds["excluded"].values, dtype=bool)
    n = len(excluded)
    if pearson.shape != (n, n) or euclidean.shape != (n, n):
        raise ValueError(f"{path}: matrices {pearson.shape}, {euclidean.shape} do not match {n} neurons")
    return Similarity(pearson, euclidean, excluded)


#: A patch store opened for reading (either layout): ``n_neurons``, ``k``, ``n_counted``, ``top()``.
PatchStore = PatchReader
#: An ICA store opened for reading: ``n_neurons``, ``n_components``, ``status``, ``components()``.
IcaStore = IcaReader


def open_patches(path: str | Path) -> PatchReader:
    """Open ``patches/{layer}.zarr`` without reading the patches."""
    return PatchReader(path)


def open_ica(path: str | Path, patches: str | Path | None = None) -> IcaReader:
    """Open ``ica/{layer}.zarr`` without computing any IC (``patches``: its patch store,
    default the one it records)."""
    return IcaReader(path, patches)
