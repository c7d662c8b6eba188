"""Reading the stages' tables and stores: the one place that knows their formats.

Every module that reads another stage's output (figures, gallery, summary, semantics,
neuron pictures) reads it through this module (docs/design.md, "File contract"), and the
writers take their column lists and facet labels from here, so a change of a column or
array name is a change here only:

- ``model/layers.csv``: ``layer`` (+ geometry); row order is network order.
- ``metrics/{layer}.csv`` / ``metrics/all_layers.csv``: :data:`METRIC_COLUMNS`, plus
  :data:`ALL_LAYER_COLUMNS` in the latter; ``facet`` is one of :data:`FACETS`. Dead
  neurons: sparsity NaN, flatness -1, mf NaN. ``top_classes`` cells are JSON
  (:func:`parse_top_classes`).
- ``similarity/{layer}.zarr`` (xarray): ``pearson``, ``euclidean`` (neuron x neuron,
  NaN rows for excluded neurons), ``excluded`` (neuron,) bool; ``similarity/summary.csv``
  (:data:`SIMILARITY_SUMMARY_COLUMNS`).
- ``summary.csv`` (:data:`SUMMARY_COLUMNS`) and ``semantics/summary.csv``
  (:data:`SEMANTICS_SUMMARY_COLUMNS`), one row per layer; several runs' stacked.
The two stores whose reading is computation live beside their writers, and are read only
through their reader classes:

- ``patches/{layer}.zarr``: :class:`neurofacets.patches.PatchReader` (either store
  layout), ``n_counted``.
- ``ica/{layer}.zarr``: :class:`neurofacets.ica.IcaReader`: the ICs in the modes ``gray``
  (neurons, comps, side, side), ``rgb`` (..., 3) float32 and ``uint8``, computed from the
  stored unmixing matrices and the patch store; per-neuron status text.

Stores are opened lazily: a caller reads a block of neurons at a time, never a whole
layer's patches (VGG16 conv5: 512 x 100 x 196 x 196 x 3 bytes = 5.9 GB).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

METRIC_COLUMNS = (
    "layer", "neuron", "n_counted", "sparsity", "flatness", "mf", "p_value", "q_value", "p_empirical", "q_empirical",
    "top_classes",
)
ALL_LAYER_COLUMNS = (*METRIC_COLUMNS, "mf_norm", "facet")
SUMMARY_COLUMNS = (
    "run", "layer", "layer_index", "depth", "n_neurons", "n_mf", "n_sf", "n_dead",
    "frac_mf", "frac_sf", "frac_dead", "mean_mf", "max_mf", "mean_mf_norm", "mean_sparsity", "mean_flatness",
    "mean_similarity", "mean_dissimilarity", "n_excluded", "preprocessing",
)
SIMILARITY_SUMMARY_COLUMNS = ("layer", "mean_similarity", "mean_dissimilarity", "n_excluded")
SEMANTICS_SUMMARY_COLUMNS = (
    "run", "layer", "layer_index", "depth", "frac_SF", "frac_concept", "frac_MF", "frac_dead",
    "mean_concept_depth", "mean_spread", "chance_spread", "null_frac_SF", "null_frac_concept", "null_frac_MF",
    "null_mean_concept_depth",
)
SEMANTICS_COLUMNS = (
    "layer", "neuron", "semantic_facet", "concept_label", "concept", "concept_name", "concept_share",
    "concept_depth", "concept_classes", "n_counted", "n_classes", "top_class_share", "spread", "spread_p", "spread_q",
)
#: ``evaluation/{layer}.csv`` (:mod:`neurofacets.evaluation`): the columns every run has; a run
#: with a class hierarchy adds :data:`EVALUATION_CONCEPT_COLUMNS`, and ``evaluation/all_layers.csv``
#: adds ``facet_0``, ``facet_1``. Suffixes ``_0`` and ``_1`` name the two halves.
EVALUATION_COLUMNS = (
    "layer", "neuron", "n_counted_0", "n_counted_1", "top_classes_0", "top_classes_1",
    "auroc", "auroc_chance", "auroc_chance_p95", "auprc", "auprc_chance", "auprc_chance_p95",
    "correlation", "correlation_chance", "correlation_chance_p95", "label_holds",
    "mf_0", "mf_1", "class_jaccard",
    "selectivity_p", "selectivity_q", "selectivity_p_permuted", "selectivity_q_permuted",
)
EVALUATION_CONCEPT_COLUMNS = (
    "concept_0", "concept_1", "concept_auroc", "concept_auroc_chance", "concept_auroc_chance_p95",
    "concept_auprc", "concept_auprc_chance", "concept_auprc_chance_p95", "concept_correlation",
    "concept_correlation_chance", "concept_correlation_chance_p95", "concept_holds", "concept_agrees",
    "semantic_facet_0", "semantic_facet_1",
)
EVALUATION_SUMMARY_COLUMNS = (
    "run", "layer", "layer_index", "depth", "n_neurons", "n_scored",
    "median_auroc", "median_auroc_chance", "median_auprc", "median_auprc_chance",
    "median_correlation", "median_correlation_chance", "frac_label_holds",
    "median_concept_auroc", "median_concept_auroc_chance", "frac_concept_holds",
    "mf_rho", "facet_kappa", "semantic_facet_kappa", "concept_agreement", "mean_class_jaccard",
    "frac_selective_true", "frac_selective_permuted",
)
FACETS = ("MF", "SF", "dead")
MF, SF, DEAD = FACETS


def parse_top_classes(text: Any) -> list[tuple[str, int]]:
    """A ``top_classes`` cell (:func:`neurofacets.metrics.top_classes`) -> ``[(name, count), ...]``.

    An empty cell (NaN or ``""``) gives ``[]``.

    Raises
    ------
    ValueError
        When the cell is not a JSON list of ``[name, count]`` pairs.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    try:
        pairs = json.loads(text)
    except json.JSONDecodeError:
        pairs = None
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], int)
        and not isinstance(p[1], bool)
        for p in pairs
    ):
        raise ValueError(f"top_classes {text!r} is not a JSON list of [name, count] pairs")
    return [(name, count) for name, count in pairs]


def _read_csv(path: str | Path, required: Sequence[str], what: str,
              dtype: Mapping[str, Any] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    table = pd.read_csv(path, keep_default_na=True, dtype=dtype)
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


def read_evaluation(path: str | Path, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """``evaluation/{layer}.csv`` or ``evaluation/all_layers.csv`` in network order.

    Text columns (class lists, concepts, facets) are read as text, empty cells as ``""``;
    ``label_holds`` and ``concept_holds`` as booleans.
    """
    text = {c: str for c in ("layer", "top_classes_0", "top_classes_1", "concept_0", "concept_1",
                              "semantic_facet_0", "semantic_facet_1", "facet_0", "facet_1")}
    table = _read_csv(path, EVALUATION_COLUMNS, "evaluation table", dtype=text)
    for column in text:
        if column in table.columns:
            table[column] = table[column].fillna("")
    for column in ("label_holds", "concept_holds"):
        if column in table.columns:
            table[column] = table[column].astype(str).str.lower().eq("true")
    table["neuron"] = table["neuron"].astype(int)
    return _order_by_layers(table, layers, Path(path))


def read_evaluation_summary(path: str | Path, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """``evaluation/summary.csv`` (:func:`neurofacets.evaluation.evaluation_summary`) in network order."""
    return _read_layer_summary(path, EVALUATION_SUMMARY_COLUMNS, "evaluation summary", layers)


def read_semantics_summary(path: str | Path, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """``semantics/summary.csv`` (:mod:`neurofacets.semantics.stage`) in network order."""
    return _read_layer_summary(path, SEMANTICS_SUMMARY_COLUMNS, "semantics summary", layers)


def read_semantics_table(path: str | Path) -> pd.DataFrame:
    """``semantics/{layer}.csv`` (:data:`SEMANTICS_COLUMNS`), with empty strings (not NaN)
    where a neuron has no concept."""
    text_columns = ("concept", "concept_name", "concept_label")
    table = _read_csv(path, SEMANTICS_COLUMNS, "semantics table", dtype=dict.fromkeys(text_columns, str))
    for column in text_columns:
        table[column] = table[column].fillna("")
    return table


def _stack_runs(tables: Sequence[pd.DataFrame], what: str) -> pd.DataFrame:
    """Per-run tables stacked; a run name in two of them is refused."""
    runs = [str(t["run"].iloc[0]) for t in tables if len(t)]
    duplicated = sorted({r for r in runs if runs.count(r) > 1})
    if duplicated:
        raise ValueError(f"runs {duplicated} appear in more than one {what}; run names must differ")
    return pd.concat(tables, ignore_index=True)


def read_semantics_summaries(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several runs' ``semantics/summary.csv`` stacked; the run names must differ."""
    if not paths:
        raise ValueError("no semantics summary given")
    return _stack_runs([read_semantics_summary(p) for p in paths], "semantics summary")


def read_evaluation_summaries(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several runs' ``evaluation/summary.csv`` stacked, in the order given; the run names must differ."""
    if not paths:
        raise ValueError("no evaluation summary given")
    return _stack_runs([read_evaluation_summary(p) for p in paths], "evaluation summary")


def read_summaries(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several runs' ``summary.csv`` (:data:`SUMMARY_COLUMNS`) stacked; the run names must differ."""
    if not paths:
        raise ValueError("no summary.csv given")
    tables = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"summary {path} does not exist (config compare_runs lists it)")
        tables.append(_read_csv(path, SUMMARY_COLUMNS, "neurofacets summary.csv"))
    return _stack_runs(tables, "summary.csv")


@dataclass(frozen=True)
class Similarity:
    """One layer's neuron x neuron matrices (NaN rows/columns for excluded neurons)."""

    pearson: np.ndarray  # float (neurons, neurons)
    euclidean: np.ndarray  # float (neurons, neurons)
    excluded: np.ndarray  # bool (neurons,)
    layer: str | None = None  # the store's ``layer`` attribute

    @property
    def n_neurons(self) -> int:
        return len(self.excluded)

    @property
    def n_excluded(self) -> int:
        return int(self.excluded.sum())


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
        layer = ds.attrs.get("layer")
    n = len(excluded)
    if pearson.shape != (n, n) or euclidean.shape != (n, n):
        raise ValueError(f"{path}: matrices {pearson.shape}, {euclidean.shape} do not match {n} neurons")
    return Similarity(pearson, euclidean, excluded, None if layer is None else str(layer))


__all__ = [
    "ALL_LAYER_COLUMNS", "DEAD", "FACETS", "METRIC_COLUMNS", "MF", "SEMANTICS_COLUMNS", "SEMANTICS_SUMMARY_COLUMNS",
    "SF", "SIMILARITY_SUMMARY_COLUMNS", "SUMMARY_COLUMNS", "Similarity", "layer_order", "parse_top_classes",
    "present_layers", "read_layers", "read_metrics", "read_semantics_summaries", "read_semantics_summary",
    "read_semantics_table", "read_similarity", "read_similarity_summary", "read_summaries", "stores_by_layer",
]
