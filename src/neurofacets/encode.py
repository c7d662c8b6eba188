"""Entry points of the encoding stage: one function per Snakemake rule (rules/encode.smk).

Each function reads its inputs, calls the computational modules ([`topk`][neurofacets.topk],
[`cof`][neurofacets.cof], [`metrics`][neurofacets.metrics], `similarity`, `rsa`, `null`) and writes
its outputs atomically. They need no Snakemake and are tested end to end on fabricated
activation shards.

Per layer: `encode_layer` (top-k + CoF, the only step that reads activations),
`layer_metrics`, `layer_similarity`, `layer_rdm`, `layer_null`.
Across layers: `all_layer_metrics`, `similarity_summary`, `layer_rsa`,
`null_summary`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from .cof import LEVEL_DIM, cof_dataset, load_labels, read_cof
from .metrics import all_layers_table, layer_metrics_table
from .null import null_summary_table, null_table
from .pathlike import PathLike
from .provenance import file_digest, provenance_attrs
from .readers import read_metrics, read_similarity
from .rsa import class_rdm, rdm_dataset, read_rdm, rsa_matrix
from .similarity import mean_off_diagonal, neuron_similarity, similarity_dataset
from .store import read_image_keys, read_layer, write_csv, write_xarray_store
from .topk import TopK, merge_top_k, read_shard_top_k, read_topk, select_top_k, write_topk

if TYPE_CHECKING:
    import xarray as xr

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _attrs(config: Mapping[str, Any] | None, images_csv: PathLike, provenance: Mapping[str, Any] | None,
           **extra: Any) -> dict[str, Any]:
    return provenance_attrs(config, run=provenance, dataset_digest=file_digest(images_csv), **extra)


def _check_layers(paths: Sequence[PathLike], layers: Sequence[str]) -> None:
    if len(paths) != len(layers):
        raise ValueError(f"{len(paths)} inputs for {len(layers)} layers")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layer names repeat: {list(layers)}")


def encode_layer(
    shard_paths: Sequence[PathLike],
    images_csv: PathLike,
    classes_csv: PathLike,
    layer: str,
    top_k: int,
    topk_path: PathLike,
    cof_path: PathLike,
    config: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Top-k images and CoF counts of one layer (rule ``encode_topk``).

    When every shard holds its own top-k candidates for at least ``top_k`` images
    (``extraction.shard_top_k``), they are merged ([`neurofacets.topk.merge_top_k`][]:
    memory shards x k x channels, whatever the number of images); otherwise the layer is
    read whole from every shard (images x channels) and selected
    ([`neurofacets.topk.select_top_k`][]). Both give the same top-k sets. Their classes
    are then counted at every available label level ([`neurofacets.cof.cof_dataset`][]).

    Parameters
    ----------
    shard_paths
        Every ``activations/shard-*.zarr`` of the run.
    images_csv, classes_csv
        The dataset tables (``dataset/images.csv``, ``dataset/classes.csv``).
    layer
        Layer name.
    top_k
        Requested k (``analysis.top_k``); ``min(top_k, images)`` are kept.
    topk_path, cof_path
        Output stores ``topk/{layer}.zarr`` and ``cof/{layer}.zarr``.
    config, provenance
        The run's configuration, or its `run_provenance`, for the
        provenance attributes.
    """
    labels = load_labels(images_csv, classes_csv)
    attrs = _attrs(config, images_csv, provenance, layer=layer, stage="encode")
    start = time.perf_counter()
    topk = _merged_shard_candidates(shard_paths, layer, top_k)
    if topk is None:
        acts = read_layer(list(shard_paths), layer)
        logger.info("layer %s: read %d images x %d channels in %.1f s", layer, *acts.max.shape,
                    time.perf_counter() - start)
        topk = select_top_k(layer, acts.image_id, acts.max, acts.argmax, top_k, acts.height, acts.width,
                            acts.content_key)
        del acts  # the top-k sets are all that is needed from here on
    known = labels.level("class").code_by_image_id
    if topk.image_id.max() >= len(known) or np.any(known[topk.image_id] < 0):
        raise ValueError(f"layer {layer}: the shards hold image ids that are not in {images_csv}")
    write_topk(topk_path, topk, top_k, attrs)
    write_xarray_store(cof_path, cof_dataset(topk, labels, attrs))
    n_dead = int((topk.n_counted == 0).sum())
    logger.info(
        "layer %s: k = %d of %d images, %d neurons (%d dead), done in %.1f s",
        layer, topk.k, topk.n_images, topk.n_neurons, n_dead, time.perf_counter() - start,
    )


def _merged_shard_candidates(shard_paths: Sequence[PathLike], layer: str, top_k: int) -> TopK | None:
    """The shards' candidates merged one shard at a time, or None when a shard lacks them.

    Folding shard by shard keeps two candidate sets in memory (the running top k and one
    shard's), whatever the number of shards and images.
    """
    merged = None
    for path in shard_paths:
        part = read_shard_top_k(path, layer)
        if part is None or part.k < min(top_k, part.n_images):
            held = "no candidates" if part is None else f"candidates for k = {part.k}"
            logger.warning(
                "layer %s: %s holds %s, fewer than top_k = %d (extraction.shard_top_k): "
                "reading every image's activations instead", layer, path, held, top_k,
            )
            return None
        merged = merge_top_k([part] if merged is None else [merged, part], top_k)
    logger.info("layer %s: merged the top-%d candidates of %d shards", layer, top_k, len(shard_paths))
    return merged


def layer_metrics(cof_path: PathLike, layer: str, level: str, out_csv: PathLike) -> pd.DataFrame:
    """Per-neuron metrics of one layer -> ``metrics/{layer}.csv``.

    Columns: layer, neuron, n_counted, sparsity, flatness, mf, p_value, p_empirical,
    top_classes (see [`neurofacets.metrics`][]), computed at label ``level``.
    """
    cof = read_cof(cof_path, level)
    names = [str(n) for n in cof[LEVEL_DIM[level]].values]
    table = layer_metrics_table(layer, cof.values, names)
    write_csv(out_csv, table)
    n_dead = int(table["mf"].isna().sum())
    logger.info("layer %s (%s level): %d neurons, %d dead", layer, level, len(table), n_dead)
    return table


def all_layer_metrics(
    metrics_csvs: Sequence[PathLike],
    layers: Sequence[str],
    facet_threshold: str | float,
    out_csv: PathLike,
) -> pd.DataFrame:
    """Every layer's metrics plus mf_norm, facet_threshold and facet -> ``metrics/all_layers.csv``.

    Parameters
    ----------
    metrics_csvs
        ``metrics/{layer}.csv`` of every layer, in network order.
    layers
        The layer names, same order (checked against the tables).
    facet_threshold
        ``analysis.facet_threshold``: ``global_mean``, ``layer_mean`` or a number.
    """
    _check_layers(metrics_csvs, layers)
    tables = []
    for path, layer in zip(metrics_csvs, layers):
        table = read_metrics(path, all_layers=False).drop(columns="layer_index")
        found = set(table["layer"].astype(str))
        if found != {layer}:
            raise ValueError(f"{path}: expected rows of layer {layer!r}, found {sorted(found)}")
        tables.append(table)
    table = all_layers_table(tables, facet_threshold)
    write_csv(out_csv, table)
    counts = table["facet"].value_counts().to_dict()
    logger.info("%d neurons in %d layers; facets %s", len(table), len(layers), counts)
    return table


def _store_from_cof(
    cof_path: PathLike,
    level: str,
    out_path: PathLike,
    attrs: Mapping[str, Any],
    compute: Callable[[xr.DataArray], T],
    dataset: Callable[[T, Mapping[str, Any]], xr.Dataset],
) -> T:
    """The skeleton of the per-layer stores computed from the layer's CoF alone (similarity,
    class RDM): read the CoF at ``level``, ``compute`` from it, write ``dataset(result, attrs)``
    to ``out_path`` (atomically); returns the result."""
    result = compute(read_cof(cof_path, level))
    write_xarray_store(out_path, dataset(result, attrs))
    return result


def layer_similarity(
    cof_path: PathLike,
    layer: str,
    level: str,
    out_path: PathLike,
    images_csv: PathLike,
    config: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Pearson and Euclidean matrices of one layer's CoF rows -> ``similarity/{layer}.zarr``."""
    sim = _store_from_cof(
        cof_path, level, out_path, _attrs(config, images_csv, provenance, stage="similarity"),
        compute=lambda cof: neuron_similarity(cof.values),
        dataset=lambda sim, attrs: similarity_dataset(layer, sim, level, attrs),
    )
    logger.info("layer %s: %d neurons, %d excluded (zero variance)", layer, len(sim.excluded), sim.n_excluded)


def similarity_summary(similarity_paths: Sequence[PathLike], layers: Sequence[str], out_csv: PathLike) -> pd.DataFrame:
    """Per layer mean off-diagonal similarity and dissimilarity -> ``similarity/summary.csv``.

    Columns: layer, n_neurons, n_excluded, mean_similarity (Pearson), mean_dissimilarity
    (Euclidean), both over the non-excluded neurons.
    """
    _check_layers(similarity_paths, layers)
    rows = []
    for path, layer in zip(similarity_paths, layers):
        sim = read_similarity(path)
        if sim.layer != layer:
            raise ValueError(f"{path} holds layer {sim.layer!r}, expected {layer!r}")
        rows.append(
            {
                "layer": layer,
                "n_neurons": sim.n_neurons,
                "n_excluded": int(sim.excluded.sum()),
                "mean_similarity": mean_off_diagonal(sim.pearson, sim.excluded),
                "mean_dissimilarity": mean_off_diagonal(sim.euclidean, sim.excluded),
            }
        )
    table = pd.DataFrame(rows)
    write_csv(out_csv, table)
    return table


def layer_rdm(
    cof_path: PathLike,
    layer: str,
    level: str,
    out_path: PathLike,
    images_csv: PathLike,
    config: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Class RDM of one layer (1 - Pearson of CoF columns) -> ``rdm/{layer}.zarr``."""
    rdm, excluded, _ = _store_from_cof(
        cof_path, level, out_path, _attrs(config, images_csv, provenance, stage="rsa"),
        compute=lambda cof: (*class_rdm(cof.values), [str(n) for n in cof[LEVEL_DIM[level]].values]),
        dataset=lambda result, attrs: rdm_dataset(layer, *result, level, attrs),
    )
    logger.info("layer %s: class RDM %d x %d, %d classes excluded", layer, *rdm.shape, int(excluded.sum()))


def layer_rsa(rdm_paths: Sequence[PathLike], layers: Sequence[str], out_csv: PathLike) -> pd.DataFrame:
    """Layer x layer Spearman correlation of the class RDMs -> ``rsa/rsa.csv``.

    The CSV is the square matrix: first column ``layer``, then one column per layer.
    """
    _check_layers(rdm_paths, layers)
    table = rsa_matrix({layer: read_rdm(path) for path, layer in zip(rdm_paths, layers)})
    write_csv(out_csv, table, index=True)
    return table


def layer_null(
    shard_paths: Sequence[PathLike],
    topk_path: PathLike,
    images_csv: PathLike,
    classes_csv: PathLike,
    level: str,
    n_permutations: int,
    seed: int,
    out_csv: PathLike,
) -> pd.DataFrame:
    """Observed and label-permuted layer statistics -> ``null/{layer}.csv``.

    One row with ``permutation`` -1 (the true labels) and one per permutation; see
    `neurofacets.null`. ``shard_paths``: the activation shards, read for the computed images'
    ids and content keys only (the permutations follow the pictures).
    """
    topk = read_topk(topk_path)
    labels = load_labels(images_csv, classes_csv)
    image_id, content_key = read_image_keys(shard_paths)
    table = null_table(topk, labels.level(level), n_permutations, seed, image_id, content_key)
    write_csv(out_csv, table)
    logger.info("layer %s: %d permutations (seed %d, %s level)", topk.layer, n_permutations, seed, level)
    return table


def null_summary(null_csvs: Sequence[PathLike], layers: Sequence[str], out_csv: PathLike) -> pd.DataFrame:
    """Per layer observed vs permuted mean MF, similarity, dissimilarity -> ``null/summary.csv``."""
    _check_layers(null_csvs, layers)
    tables = []
    for path, layer in zip(null_csvs, layers):
        table = pd.read_csv(path)
        if set(table["layer"].astype(str)) != {layer}:
            raise ValueError(f"{path}: expected rows of layer {layer!r}")
        tables.append(table)
    table = null_summary_table(tables)
    write_csv(out_csv, table)
    return table


def layer_statistics(
    shard_paths: Sequence[PathLike],
    cof_path: PathLike,
    topk_path: PathLike,
    images_csv: PathLike,
    classes_csv: PathLike,
    layer: str,
    *,
    level: str,
    n_permutations: int,
    seed: int,
    metrics_csv: PathLike,
    similarity_path: PathLike,
    rdm_path: PathLike,
    null_csv: PathLike,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Everything one layer's CoF and top-k give (rule ``encode_statistics``).

    `layer_metrics`, `layer_similarity`, `layer_rdm` and `layer_null`, in one job:
    each takes well under a second, less than a job's start (interpreter and imports), so
    one job per layer instead of four (issue 30). Each output is written atomically on its
    own, as by its function alone.
    """
    layer_metrics(cof_path, layer, level, metrics_csv)
    layer_similarity(cof_path, layer, level, similarity_path, images_csv, provenance=provenance)
    layer_rdm(cof_path, layer, level, rdm_path, images_csv, provenance=provenance)
    layer_null(shard_paths, topk_path, images_csv, classes_csv, level, n_permutations, seed, null_csv)
