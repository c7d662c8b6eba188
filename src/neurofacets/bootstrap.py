"""95 % intervals of a run's headline numbers: a bootstrap over images, stratified by class.

What one resample is (docs/methods.md, "Intervals"):

- **Draw.** Each class's images are drawn with replacement, as many as the class holds, so
  every resample has the run's class sizes. An image drawn m times counts m times. Draw b uses
  ``numpy.random.default_rng([seed, STREAM, FULL, b])`` (``analysis.bootstrap_seed``) and walks
  the classes, and each class's images, in content order (`resample_counts`): the same
  photos give the same resamples whatever their folders are called, and two runs of the same
  photos (a trained and an untrained network) get the same resamples, so their difference
  can be bootstrapped draw by draw (``bootstrap/summary_draws.csv``).
- **Top-k, CoF, metrics.** Each neuron's top-k of the resampled images (same k and tie rule as
  the run: an image drawn m times fills up to m of the k places), its CoF row (copies with
  activation > 0 count), Gini sparsity, flatness and MF degree (`neurofacets.metrics`);
  then the facets, ``mf_norm`` and the per-layer numbers exactly as ``summary.csv`` forms them
  (`neurofacets.summary.summarize_run` on each draw's table, with the same
  ``analysis.facet_threshold`` over every layer of that draw).
- **Evaluation.** The two halves of the evaluation stay the ones the run used
  (`neurofacets.evaluation.split_halves`); each half is resampled within its classes
  (draw b: ``[seed, STREAM, HALVES, b]``), each half's top-k sets and MF degrees recomputed, and
  the halves' agreement (``mf_rho``, ``facet_kappa``, ``mean_class_jaccard``) recomputed per draw.
- **Labels that hold.** Each resampled half's labels (`neurofacets.evaluation.top_class_members`)
  are scored on the other resampled half (copies tied), their p from the Mann-Whitney normal
  approximation (`weighted_label_test`), the directions combined as the run combines them
  (`combined_label_p`), and ``frac_label_holds`` the share with BH q < 0.05 (`share_label_holds`).
- **Interval.** The run's number plus the 2.5th and 97.5th percentiles of the draws' deviations
  from their median (`interval`: a resample repeats images, which shifts top-k statistics
  but not their spread; draws where the number is undefined, NaN, are left out).

What an interval does not cover: another set of classes, another network training seed,
another choice of top_k or threshold, and the other label tests (held-out AUROC medians,
selectivity, concepts: their verdicts need thousands of null draws per neuron; docs/evaluation.md).

Memory: a layer is read one block of neurons at a time (`neuron_block`: at most
`VALUES_BLOCK_BYTES` of activations and `COF_BLOCK_ENTRIES` resampled CoF counts);
besides it the job holds the draws' multiplicities (uint8, draws x images, twice) and the
per-draw metrics (float64, draws x neurons, six arrays) and the label test's working arrays
(`LABEL_BLOCK_ENTRIES` each, about ten).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .cof import LabelLevel, content_order, load_labels
from .metrics import assign_facets, bh_q_values, flatness, gini, mf_degree, normalise_mf
from .pathlike import PathLike
from .provenance import file_digest, provenance_attrs
from .readers import DEAD, EVALUATION_HEADLINE_COLUMNS, SUMMARY_HEADLINE_COLUMNS
from .store import open_shard, read_rows, write_csv, write_xarray_store

logger = logging.getLogger(__name__)

#: Seed streams: ``default_rng([seed, STREAM, what, draw])``, distinct from the evaluation's.
STREAM = 0xB007
FULL, HALVES = 1, 2
CI_PERCENTILES = (2.5, 97.5)  # a 95 % interval
#: The range each headline number can take: an interval is clipped to it.
BOUNDS = {
    "frac_mf": (0.0, 1.0), "frac_sf": (0.0, 1.0), "frac_dead": (0.0, 1.0), "mean_mf": (0.0, np.inf),
    "mean_mf_norm": (0.0, 1.0), "mean_sparsity": (0.0, 1.0), "mean_flatness": (0.0, 1.0),
    "mf_rho": (-1.0, 1.0), "facet_kappa": (-np.inf, 1.0), "mean_class_jaccard": (0.0, 1.0),
    "frac_label_holds": (0.0, 1.0),
}
VALUES_BLOCK_BYTES = 256_000_000  # float32 activations of one block of neurons held at a time
COF_BLOCK_ENTRIES = 4_000_000  # draws x neurons x classes of one block's CoF counts (int32, and the metrics' copies)
LAYER_VARIABLES = ("sparsity", "flatness", "mf_0", "mf_1", "class_jaccard", "label_p")
LABEL_BLOCK_ENTRIES = 500_000  # draws x held-out images x neurons of the label test held at a time


def stratum_order(strata: np.ndarray, order: np.ndarray) -> list[np.ndarray]:
    """Each stratum's image positions in content order, the strata in order of their first image there.

    Parameters
    ----------
    strata
        int (images,): each image's stratum (its class, or class and half).
    order
        The images' positions in content order (`neurofacets.cof.content_order`).
    """
    strata, order = np.asarray(strata), np.asarray(order)
    if strata.shape != order.shape or strata.ndim != 1:
        raise ValueError(f"strata {strata.shape} and order {order.shape} must be equal 1-d shapes")
    in_order = strata[order]
    # stable sort by stratum keeps content order within each; strata ranked by first appearance
    _, first = np.unique(in_order, return_index=True)
    rank = np.empty(int(in_order.max()) + 1 if len(in_order) else 0, dtype=np.int64)
    rank[in_order[np.sort(first)]] = np.arange(len(first))
    by_stratum = order[np.argsort(rank[in_order], kind="stable")]
    sizes = np.bincount(rank[in_order], minlength=len(first))
    return np.split(by_stratum, np.cumsum(sizes)[:-1]) if len(first) else []


def resample_counts(strata: np.ndarray, order: np.ndarray, seed: int, draws: int, what: int = FULL) -> np.ndarray:
    """How often each image is drawn in each resample: uint8 (draws, images).

    Every stratum of n images is drawn n times with replacement. Draw b uses
    ``default_rng([seed, STREAM, what, b])`` over the strata and their images in content order
    (`stratum_order`), so the counts follow the pictures, not the image ids.
    """
    if draws < 0:
        raise ValueError(f"the number of resamples must be >= 0, got {draws}")
    groups = stratum_order(strata, order)
    counts = np.zeros((draws, len(strata)), dtype=np.uint8)
    for b in range(draws):
        rng = np.random.default_rng([seed, STREAM, what, b])
        for members in groups:
            drawn = np.bincount(rng.integers(0, len(members), len(members)), minlength=len(members))
            if drawn.max() > np.iinfo(np.uint8).max:
                raise OverflowError(f"resample {b}: an image drawn {drawn.max()} times (more than uint8 holds)")
            counts[b, members] = drawn
    return counts


def resampled_cof(values: np.ndarray, codes: np.ndarray, n_columns: int, content_rank: np.ndarray,
                  counts: np.ndarray, k: int) -> np.ndarray:
    """Each resample's CoF rows: int32 (draws, neurons, n_columns).

    Parameters
    ----------
    values
        float (images, neurons) activations.
    codes
        int (images,) column of each image at the analysed label level.
    n_columns
        Number of columns (classes) of the CoF.
    content_rank
        int (images,) each image's rank in content order: the tie rule (activation descending,
        then content order), as the run's top-k sets.
    counts
        (draws, images) multiplicity of each image in each resample (`resample_counts`).
    k
        Places in each top-k set.

    Notes
    -----
    A neuron's resampled top k are its images in tie-rule order, each repeated as often as it
    was drawn, cut after k copies; only copies with activation > 0 count. Only positive images
    can count, and only the first few of them are needed: the candidates start at the ``3k + 32``
    best and double until every draw has k copies (or the positive images run out).
    """
    values = np.asarray(values)
    n_images, n_neurons = values.shape
    if counts.shape[1] != n_images or codes.shape != (n_images,) or content_rank.shape != (n_images,):
        raise ValueError(f"values {values.shape}, codes {codes.shape}, content_rank {content_rank.shape} and "
                         f"counts {counts.shape} disagree on the number of images")
    out = np.zeros((len(counts), n_neurons, n_columns), dtype=np.int32)
    for j in range(n_neurons):
        v = values[:, j]
        positive = np.flatnonzero(v > 0)
        depth = 3 * k + 32
        while True:
            if len(positive) <= depth:
                cand = positive
            else:
                cut = np.partition(v[positive], len(positive) - depth)[len(positive) - depth]
                cand = positive[v[positive] >= cut]  # every image tied at the cut-off included
            cand = cand[np.lexsort((content_rank[cand], -v[cand]))]
            w = counts[:, cand].astype(np.int32)
            before = np.cumsum(w, axis=1) - w  # copies ahead of each candidate
            if len(cand) == len(positive) or not len(cand) or (before[:, -1] + w[:, -1] >= k).all():
                break
            depth *= 2
        take = np.clip(k - before, 0, w)  # copies of each candidate among the k places
        cell = np.arange(len(counts))[:, None] * n_columns + codes[cand][None, :]  # (draw, class) of each copy
        # float weights hold the integer counts exactly (each at most k)
        summed = np.bincount(cell.ravel(), weights=take.ravel(), minlength=len(counts) * n_columns)
        out[:, j, :] = summed.reshape(len(counts), n_columns).astype(np.int32)
    return out


def _metrics(cof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparsity and flatness (draws, neurons) of (draws, neurons, columns) CoF rows."""
    draws, neurons, columns = cof.shape
    rows = cof.reshape(draws * neurons, columns)
    return gini(rows).reshape(draws, neurons), flatness(rows).reshape(draws, neurons)


def _class_jaccard(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """`neurofacets.evaluation.class_jaccard` of (draws, neurons, columns) rows."""
    a, b = first > 0, second > 0
    union = (a | b).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, (a & b).sum(axis=2) / union, np.nan)


def weighted_label_test(values: np.ndarray, codes: np.ndarray, counts: np.ndarray, members: np.ndarray,
                        block_entries: int = LABEL_BLOCK_ENTRIES) -> tuple[np.ndarray, np.ndarray]:
    """Held-out AUROC of each resample's labels and its Mann-Whitney p (normal approximation).

    Parameters
    ----------
    values
        float (images, neurons) activations of one direction's held-out images.
    codes
        int (images,) column of each held-out image at the analysed label level.
    counts
        (draws, images) multiplicity of each held-out image in each resample: an image drawn m
        times is m tied observations.
    members
        bool (draws, neurons, columns): each resample's label of each neuron
        (`neurofacets.evaluation.top_class_members` of the resampled explaining half).

    Returns
    -------
    auroc, p
        float64 (draws, neurons). ``auroc`` is the AUROC of the label's images (with their
        multiplicities, midranks for ties: `sklearn.metrics.roc_auc_score` with
        ``sample_weight=counts``); ``p`` the upper-tail p of its Mann-Whitney U under the
        permutation null of the held-out images' labels (P positives among the n copies),
        from the tie-corrected normal approximation with continuity correction
        (`scipy.stats.mannwhitneyu`, ``method="asymptotic"``, ``alternative="greater"``):
        ``z = (U - P Q / 2 - 1/2) / sqrt(P Q / 12 (n + 1 - sum(t^3 - t) / (n (n - 1))))``.
        NaN where the label marks no copy or every one; p = 1 where every copy is tied.
    """
    from scipy.special import ndtr  # scipy at call time only, as the evaluation imports it

    values = np.asarray(values, dtype=np.float64)
    codes = np.asarray(codes)
    counts = np.asarray(counts)
    members = np.asarray(members, dtype=bool)
    n_images, n_neurons = values.shape
    draws = len(counts)
    if counts.shape != (draws, n_images) or codes.shape != (n_images,) or members.shape[:2] != (draws, n_neurons):
        raise ValueError(f"values {values.shape}, codes {codes.shape}, counts {counts.shape} and members "
                         f"{members.shape} disagree on the draws, images or neurons")
    auroc = np.full((draws, n_neurons), np.nan)
    p = np.full((draws, n_neurons), np.nan)
    if not draws or not n_images:
        return auroc, p
    n = counts.sum(axis=1, dtype=np.int64)[:, None]  # copies per draw (the half's size: strata keep their sizes)
    # counts <= n, doubled midranks <= 2n + 1 and a copy-weighted doubled rank <= 255 (2n + 1) are exact
    # in int32 while n (2n + 1) < 2^31; the sums over images are taken in int64
    small = int(n.max()) * (2 * int(n.max()) + 1) < np.iinfo(np.int32).max
    weights = counts.astype(np.int32 if small else np.int64)
    # sum over copies of (t^3 - t) for a tie group of t copies, where only an image's own copies tie
    own_ties = (weights.astype(np.float64) ** 3 - weights).sum(axis=1)[:, None]
    width = max(1, block_entries // max(1, draws * n_images))
    place = np.arange(n_images)[:, None]
    for first in range(0, n_neurons, width):
        cols = slice(first, min(first + width, n_neurons))
        v = values[:, cols]
        order = np.argsort(v, axis=0, kind="stable")  # ascending: ranks count from the lowest
        ordered = np.take_along_axis(v, order, axis=0)
        starts_group = np.ones(ordered.shape, dtype=bool)
        starts_group[1:] = ordered[1:] != ordered[:-1]
        ends_group = np.ones(ordered.shape, dtype=bool)
        ends_group[:-1] = starts_group[1:]
        start = np.maximum.accumulate(np.where(starts_group, place, 0), axis=0)
        end = np.minimum.accumulate(np.where(ends_group, place, n_images - 1)[::-1], axis=0)[::-1]
        w = weights[:, order]  # (draws, images, neurons) in each neuron's ascending order
        through = np.cumsum(w, axis=1, dtype=w.dtype)
        below = through - w
        # gathers as one flat take per draw (np.take is several times faster than take_along_axis)
        flat = (draws, -1)
        column = np.arange(v.shape[1])
        group_below = np.take(below.reshape(flat), start * v.shape[1] + column, axis=1)  # copies below each group
        doubled_rank = group_below + np.take(through.reshape(flat), end * v.shape[1] + column, axis=1) + 1
        hit = np.take(np.ascontiguousarray(members[:, cols, :]).reshape(flat), column * members.shape[2] + codes[order],
                      axis=1)
        positive_copies = w * hit
        positives = positive_copies.sum(axis=1, dtype=np.int64).astype(np.float64)
        doubled_rank_sum = (positive_copies * doubled_rank).sum(axis=1, dtype=np.int64).astype(np.float64)
        # a tie group of several images (equal activations, e.g. zeros) has one (t^3 - t) in
        # place of its members' own: corrected group by group, only where such groups are
        ties = np.repeat(own_ties, v.shape[1], axis=1)
        neuron_of, row_of = np.nonzero((start != end).T)  # their positions, neuron by neuron, in order
        if len(row_of):
            copies = w[:, row_of, neuron_of].astype(np.float64)  # (draws, positions)
            bounds = np.flatnonzero(row_of == start[row_of, neuron_of])  # each group's first position
            total = np.add.reduceat(copies, bounds, axis=1)
            own = np.add.reduceat(copies**3 - copies, bounds, axis=1)
            np.add.at(ties, (slice(None), neuron_of[bounds]), total**3 - total - own)
        u = (doubled_rank_sum - positives * (positives + 1)) / 2
        negatives = n - positives
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = positives * negatives / 12 * ((n + 1) - ties / (n * (n - 1)))
            z = (u - positives * negatives / 2 - 0.5) / np.sqrt(variance)
            scored = (positives > 0) & (negatives > 0)
            auroc[:, cols] = np.where(scored, u / (positives * negatives), np.nan)
            p[:, cols] = np.where(scored, np.where(variance > 0, ndtr(-z), 1.0), np.nan)
    return auroc, p


def combined_label_p(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The two directions' p combined as the run combines them (`neurofacets.evaluation.label_p_values`):
    ``min(1, 2 min(p_0, p_1))``, a direction without a label counting as 1; NaN where neither is scored."""
    both = np.stack([np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)])
    with np.errstate(invalid="ignore"):
        p = np.minimum(1.0, 2 * np.min(np.where(np.isnan(both), 1.0, both), axis=0))
    return np.where(np.isnan(both).all(axis=0), np.nan, p)


def share_label_holds(label_p: np.ndarray) -> float:
    """The share of a layer's scored neurons whose label holds from their p (NaN: not scored):
    Benjamini-Hochberg q < `neurofacets.evaluation.Q_SIGNIFICANT` within the layer, as
    ``frac_label_holds`` of ``evaluation/summary.csv``."""
    from .evaluation import Q_SIGNIFICANT

    scored = np.isfinite(label_p)
    if not scored.any():
        return float("nan")
    return float((bh_q_values(label_p[scored]) < Q_SIGNIFICANT).mean())


def neuron_block(n_images: int, n_neurons: int, block_bytes: int = VALUES_BLOCK_BYTES, resamples: int = 0,
                 n_columns: int = 0, cof_entries: int = COF_BLOCK_ENTRIES) -> int:
    """Neurons processed together: their float32 activations of every image fit in ``block_bytes``
    and their resampled CoF rows (resamples x neurons x columns) in ``cof_entries``."""
    by_values = block_bytes // max(1, 4 * n_images)
    by_cof = cof_entries // max(1, resamples * n_columns)
    return max(1, min(n_neurons, by_values, by_cof))


def read_layer_block(shard_paths: Sequence[PathLike], layer: str, start: int, stop: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``image_id``, ``content_key`` and float32 activations (images, stop - start) of neurons start..stop-1.

    Images sorted by id, as `neurofacets.store.read_layer` returns them; only this block
    of neurons is held.
    """
    parts = []
    for path in shard_paths:
        root = open_shard(path)
        if layer not in root:
            raise KeyError(f"layer {layer!r} not in {path}; it has {root.attrs.get('layers')}")
        ids = read_rows(path, root["image_id"])
        values = (read_rows(path, root[layer]["max"], columns=slice(start, stop)) if stop > start
                  else np.empty((len(ids), 0), dtype=np.float32))
        parts.append((ids, read_rows(path, root["content_key"]), values))
    image_id = np.concatenate([p[0] for p in parts])
    content_key = np.concatenate([p[1] for p in parts])
    values = np.concatenate([p[2] for p in parts])
    if np.any(np.diff(image_id) <= 0):  # shards given out of order: sort (a copy of the block)
        order = np.argsort(image_id, kind="stable")
        image_id, content_key, values = image_id[order], content_key[order], values[order]
        if np.any(np.diff(image_id) == 0):
            raise ValueError(f"an image id appears in more than one shard of layer {layer!r}")
    return image_id, content_key, values


def layer_channels(shard_paths: Sequence[PathLike], layer: str) -> int:
    """The number of neurons of ``layer`` (every shard must agree)."""
    found = {int(open_shard(path)[layer].attrs["channels"]) for path in shard_paths}
    if len(found) != 1:
        raise ValueError(f"layer {layer!r} has different channel counts in the shards: {sorted(found)}")
    return found.pop()


def layer_draws(
    shard_paths: Sequence[PathLike], layer: str, level: LabelLevel, class_level: LabelLevel, *,
    top_k: int, seed: int, split_seed: int, resamples: int,
    block_bytes: int = VALUES_BLOCK_BYTES,
) -> xr.Dataset:
    """Every resample's per-neuron metrics of one layer (the store ``bootstrap/{layer}.zarr``).

    Variables (draw, neuron): ``sparsity``, ``flatness`` (the whole run's images resampled) and
    ``mf_0``, ``mf_1``, ``class_jaccard``, ``label_p`` (the evaluation's halves resampled;
    ``label_p`` is `combined_label_p` of the two directions' `weighted_label_test`).

    Parameters
    ----------
    level, class_level
        Labels at the analysed level (the CoF's columns) and at class level (the strata).
    top_k, split_seed
        ``analysis.top_k`` and ``analysis.seed`` (the evaluation's halves).
    seed, resamples
        ``analysis.bootstrap_seed`` and ``analysis.bootstrap``.
    """
    from .evaluation import split_halves, top_class_members  # evaluation imports scipy.stats: only here

    shard_paths = list(shard_paths)
    n_neurons = layer_channels(shard_paths, layer)
    image_id, content_key, _ = read_layer_block(shard_paths, layer, 0, 0)
    n_images = len(image_id)
    if n_images == 0:
        raise ValueError(f"layer {layer!r}: no images")
    codes = level.codes(image_id)
    classes = class_level.codes(image_id)
    order = content_order(content_key, image_id)
    content_rank = np.empty(n_images, dtype=np.int64)
    content_rank[order] = np.arange(n_images)
    full_counts = resample_counts(classes, order, seed, resamples, FULL)
    half = split_halves(codes, order, split_seed)
    half_counts = resample_counts(classes * 2 + half, order, seed, resamples, HALVES)
    halves = [np.flatnonzero(half == h) for h in (0, 1)]
    shape = (resamples, n_neurons)
    out = {name: np.full(shape, np.nan) for name in LAYER_VARIABLES}
    k = min(top_k, n_images)
    block = neuron_block(n_images, n_neurons, block_bytes, resamples, level.n_columns)
    for start in range(0, n_neurons if resamples else 0, block):  # no resamples: nothing to read
        stop = min(start + block, n_neurons)
        _, _, values = read_layer_block(shard_paths, layer, start, stop)
        cof = resampled_cof(values, codes, level.n_columns, content_rank, full_counts, k)
        out["sparsity"][:, start:stop], out["flatness"][:, start:stop] = _metrics(cof)
        half_cof = []
        for h, rows in enumerate(halves):
            if len(rows) == 0:
                raise ValueError(f"layer {layer}: half {h} holds no image ({n_images} images): too few to split")
            rows_cof = resampled_cof(values[rows], codes[rows], level.n_columns, content_rank[rows],
                                     half_counts[:, rows], min(top_k, len(rows)))
            out[f"mf_{h}"][:, start:stop] = mf_degree(*_metrics(rows_cof))
            half_cof.append(rows_cof)
        out["class_jaccard"][:, start:stop] = _class_jaccard(*half_cof)
        direction_p = []
        for h, rows_cof in enumerate(half_cof):  # label from half h, scored on the other half's images
            held_out = halves[1 - h]
            members = top_class_members(rows_cof.reshape(-1, level.n_columns)).reshape(rows_cof.shape)
            _, p = weighted_label_test(values[held_out], codes[held_out], half_counts[:, held_out], members)
            direction_p.append(p)
        out["label_p"][:, start:stop] = combined_label_p(*direction_p)
    dims = ("draw", "neuron")
    return xr.Dataset(
        {name: (dims, array) for name, array in out.items()},
        coords={"draw": np.arange(resamples), "neuron": np.arange(n_neurons)},
        attrs={"layer": layer, "resamples": resamples, "seed": seed, "split_seed": split_seed, "k": k,
               "top_k": top_k, "level": level.level, "n_images": n_images},
    )


def bootstrap_layer(shard_paths: Sequence[PathLike], images_csv: PathLike, classes_csv: PathLike, layer: str, *,
                    level: str, top_k: int, seed: int, split_seed: int, resamples: int, out: PathLike,
                    provenance: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Rule ``bootstrap_layer``: `layer_draws` of one layer -> ``bootstrap/{layer}.zarr``.

    ``provenance``: the run's store provenance (``STORE_PROVENANCE``, the shards' config digest),
    written in the store's attributes with the dataset digest, as every store derived from the
    activations carries it (`neurofacets.provenance.provenance_attrs`).
    """
    started = time.perf_counter()
    labels = load_labels(images_csv, classes_csv)
    ds = layer_draws(shard_paths, layer, labels.level(level), labels.level("class"), top_k=top_k, seed=seed,
                     split_seed=split_seed, resamples=resamples)
    ds.attrs.update(provenance_attrs(None, run=provenance, dataset_digest=file_digest(images_csv), stage="bootstrap"))
    write_xarray_store(out, ds)
    logger.info("layer %s: %d resamples of %d images x %d neurons in %.1f s", layer, resamples,
                ds.attrs["n_images"], ds.sizes["neuron"], time.perf_counter() - started)
    return ds


def read_layer_draws(path: PathLike) -> xr.Dataset:
    """Load ``bootstrap/{layer}.zarr`` (in memory), checking its variables."""
    with xr.open_zarr(path, consolidated=False) as ds:
        missing = [name for name in LAYER_VARIABLES if name not in ds]
        if missing:
            raise ValueError(f"{path}: bootstrap store lacks {missing}")
        return ds.load()


def facet_kappa(first: np.ndarray, second: np.ndarray) -> float:
    """Cohen's kappa of two facet arrays, in numpy (the evaluation's ``facet_kappa`` too).

    Over the neurons alive (not ``dead``, not empty) on both; NaN with fewer than 2 of them or
    one category. The arithmetic is `sklearn.metrics.cohen_kappa_score`'s (unweighted),
    so the values are the same floats; it is called once per layer and draw.
    """
    first, second = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    alive = (first != DEAD) & (second != DEAD) & (first != "") & (second != "")
    a, b = first[alive].astype(str), second[alive].astype(str)
    categories = np.union1d(a, b)
    if len(a) < 2 or len(categories) < 2:
        return float("nan")
    n = len(categories)
    confusion = np.bincount(np.searchsorted(categories, a) * n + np.searchsorted(categories, b),
                            minlength=n * n).reshape(n, n)
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / np.sum(confusion.sum(axis=1))
    weights = np.ones((n, n), dtype=int) - np.eye(n, dtype=int)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(1 - np.sum(weights * confusion) / np.sum(weights * expected))


def draws_table(stores: Sequence[xr.Dataset], layers: Sequence[str], facet_threshold: str | float,
                run: str) -> pd.DataFrame:
    """Every draw's headline numbers per layer (``bootstrap/summary_draws.csv``).

    Columns ``run``, ``layer``, ``draw``, `neurofacets.readers.SUMMARY_HEADLINE_COLUMNS`,
    `neurofacets.readers.EVALUATION_HEADLINE_COLUMNS`: each computed from the draw's
    per-neuron metrics as ``summary.csv`` and ``evaluation/summary.csv`` compute them from the run's.
    """
    from .evaluation import _spearman
    from .summary import summarize_run

    if len(stores) != len(layers):
        raise ValueError(f"{len(stores)} bootstrap stores for {len(layers)} layers")
    for ds, layer in zip(stores, layers):
        if ds.attrs["layer"] != layer:
            raise ValueError(f"bootstrap store of layer {ds.attrs['layer']!r} given for layer {layer!r}")
    draws = {int(ds.sizes["draw"]) for ds in stores}
    if len(draws) > 1:
        raise ValueError(f"the layers' bootstrap stores hold different numbers of draws: {sorted(draws)}")
    n_draws = draws.pop() if draws else 0
    columns = ["run", "layer", "draw", *SUMMARY_HEADLINE_COLUMNS, *EVALUATION_HEADLINE_COLUMNS]
    neuron_layer = np.concatenate([np.full(ds.sizes["neuron"], layer, dtype=object)
                                   for ds, layer in zip(stores, layers)])
    no_similarity = pd.DataFrame(columns=["layer", "mean_similarity", "mean_dissimilarity", "n_excluded"])
    rows = []
    for b in range(n_draws):
        sparsity = np.concatenate([ds["sparsity"].values[b] for ds in stores])
        flat = np.concatenate([ds["flatness"].values[b] for ds in stores])
        mf = mf_degree(sparsity, flat)
        metrics = pd.DataFrame({"layer": neuron_layer, "sparsity": sparsity, "flatness": flat, "mf": mf,
                                "mf_norm": normalise_mf(mf), "facet": assign_facets(mf, neuron_layer, facet_threshold)})
        summary = summarize_run(metrics, no_similarity, layers, run).set_index("layer")
        half_mf = [np.concatenate([ds[f"mf_{h}"].values[b] for ds in stores]) for h in (0, 1)]
        half_facet = [assign_facets(m, neuron_layer, facet_threshold) for m in half_mf]
        for ds, layer in zip(stores, layers):
            mine = neuron_layer == layer
            jaccard = ds["class_jaccard"].values[b]
            row = {"run": run, "layer": layer, "draw": b, **summary.loc[layer, list(SUMMARY_HEADLINE_COLUMNS)]}
            row["mf_rho"] = _spearman(half_mf[0][mine], half_mf[1][mine])
            row["facet_kappa"] = facet_kappa(half_facet[0][mine], half_facet[1][mine])
            row["mean_class_jaccard"] = float(np.nanmean(jaccard)) if np.isfinite(jaccard).any() else np.nan
            row["frac_label_holds"] = share_label_holds(ds["label_p"].values[b])
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def write_draws(store_paths: Sequence[PathLike], layers: Sequence[str], facet_threshold: str | float, run: str,
                out_csv: PathLike) -> pd.DataFrame:
    """Rule ``bootstrap_draws``: `draws_table` of the layers' stores -> ``bootstrap/summary_draws.csv``."""
    table = draws_table([read_layer_draws(path) for path in store_paths], layers, facet_threshold, run)
    write_csv(out_csv, table)
    logger.info("run %s: %d draws of %d layers -> %s", run, table["draw"].nunique(), len(layers), out_csv)
    return table


def interval(point: float, draws: np.ndarray) -> tuple[float, float]:
    """The 95 % interval of ``point`` from its bootstrap ``draws``: the draws' spread, centred on the point.

    ``point + percentile(draws - median(draws), CI_PERCENTILES)``. Draws where the number is
    undefined (NaN) are left out; NaN without a point or without a defined draw.

    Why centred: a resample repeats images, and in a top-k set a repeated image fills several
    places with one class, so every top-k statistic of a resample is shifted (sparsity up,
    flatness and the halves' agreement down) by more than its spread; a plain percentile
    interval would then miss the run's own number. The spread itself matches the spread over
    fresh samples of the population (docs/methods.md#intervals, tests/test_bootstrap.py), so the
    interval is the run's number plus the resamples' deviations from their median. For the
    difference of two runs take ``point`` and ``draws`` of the difference (draw by draw).
    """
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[~np.isnan(draws)]
    if not len(draws) or not np.isfinite(point):
        return float("nan"), float("nan")
    low, high = point + np.percentile(draws - np.median(draws), CI_PERCENTILES)
    return float(low), float(high)


def with_intervals(summary: pd.DataFrame, draws: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``summary`` with ``X_ci_low`` and ``X_ci_high`` (`interval`) for each X of ``columns``.

    Rows are matched by ``layer``; each interval is clipped to the range the number can take
    (`BOUNDS`). Without draws (``analysis.bootstrap: 0``) the columns are empty (NaN).
    """
    summary = summary.copy()
    missing = [c for c in ("layer", *columns) if c not in draws.columns]
    if missing:
        raise ValueError(f"the bootstrap draws lack columns {missing}")
    by_layer = dict(tuple(draws.groupby("layer", sort=False)))
    unknown = sorted(set(by_layer) - set(summary["layer"]))
    if unknown:
        raise ValueError(f"the bootstrap draws name layers the summary lacks: {unknown}")
    for column in columns:
        ends = [interval(point, by_layer[layer][column].to_numpy(np.float64)) if layer in by_layer
                else (np.nan, np.nan) for layer, point in zip(summary["layer"], summary[column].astype(np.float64))]
        lowest, highest = BOUNDS.get(column, (-np.inf, np.inf))
        summary[f"{column}_ci_low"] = np.clip(np.array([low for low, _ in ends], dtype=np.float64), lowest, highest)
        summary[f"{column}_ci_high"] = np.clip(np.array([high for _, high in ends], dtype=np.float64), lowest, highest)
    return summary
