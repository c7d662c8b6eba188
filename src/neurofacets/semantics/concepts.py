"""Each neuron described by the class hierarchy: concept, semantic spread, semantic facet.

All quantities derive from the neuron's CoF row ``c`` (counts of its counted top-k
images per class, docs/methods.md; ``n = sum(c)``) and the dataset's
`ClassHierarchy`:

- **coverage** of a node v: ``sum of c over the classes under v`` (v itself or below).
- A node **covers the share** s when its coverage is at least ``ceil(s * n)`` images.
- A node is **admissible** as a concept when it spans at most ``max_concept_classes``
  (a fraction) of the dataset's classes: WordNet's ``entity.n.01`` covers every image of
  every neuron and says nothing; "artifact" above 58 % of Tiny-ImageNet's classes says
  little more.
- The **concept** of a neuron is the deepest admissible node covering the share (ties:
  the higher coverage, then the lowest node id), with its ``concept_share`` (coverage /
  n), ``concept_depth`` and ``concept_classes`` (dataset classes it spans). None exists
  when no admissible node covers the share. Label: ``dog.n.01 (87 %)``.
- **Semantic facet**: ``dead`` (n = 0); ``SF`` when one class alone holds
  ``ceil(s * n)`` images; ``concept`` when not SF but a concept exists; ``MF`` otherwise.
- **Semantic spread**: mean path distance between the classes of two distinct counted
  images, ``c^T D c / (n (n - 1))`` (D: class path distances, zero diagonal; NaN for
  n < 2). Its **p-value** is the lower tail against ``draws`` sets of n images drawn
  without replacement from the whole dataset: ``(1 + #{null <= observed}) / (1 + draws)``,
  compared exactly on the integer sums ``c^T D c``. The sets are the first n images of
  ``draws`` random sequences of k distinct images (``numpy.random.default_rng([seed, k])``,
  k the run's top-k size), drawn as positions in the images' content order
  (`neurofacets.cof.content_order`), so every neuron and layer of a run, and every run of
  the same photos with the same k, meets the same draws, whatever the class folders are
  called or in whatever order. The **chance spread** (the null's exact mean, whatever n) is the
  mean distance over all pairs of distinct dataset images, ``s^T D s / (N (N - 1))`` for
  class sizes s and N images.
- **Levels**: the CoF row with its classes merged into the nodes of the hierarchy cut at a
  depth (`ClassHierarchy.level_groups`), or into the dataset's coarse groups; Gini
  sparsity, flatness and MF degree of that shorter row ([`neurofacets.metrics`][], N =
  the number of groups).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import bh_q_values, flatness, gini, mf_degree
from ..readers import DEAD, MF, SF
from .hierarchy import ClassHierarchy

CONCEPT = "concept"  # the semantic facet between SF and MF: many classes, one covering concept
SEMANTIC_FACETS = (SF, CONCEPT, MF, DEAD)
EXACT_FLOAT = 2**53  # integers below this are exact in float64
SHARE_TOLERANCE = 1e-9  # share * n within this of an integer counts as that integer (0.8 * 50 = 40)


@dataclass(frozen=True)
class Concepts:
    """Per neuron: concept node (-1 for none), its coverage, facet; see the module docstring."""

    node: np.ndarray  # int (neurons,), -1 where no concept
    coverage: np.ndarray  # int (neurons,): images under the concept (0 where none)
    n_counted: np.ndarray  # int (neurons,)
    facet: np.ndarray  # object (neurons,): SEMANTIC_FACETS


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of non-negative integer matrices, exactly, through float64 BLAS.

    numpy multiplies int64 matrices without BLAS (about 10-50x slower at these sizes,
    ``benchmarks/semantics.py``); float64 is exact while every partial sum stays below
    2**53, which is checked from the largest entries.
    """
    a, b = np.asarray(a), np.asarray(b)
    bound = float(a.max(initial=0)) * float(b.max(initial=0)) * a.shape[-1]
    if bound >= EXACT_FLOAT:
        raise OverflowError(f"integer products up to {bound:.3g} are not exact in float64")
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def needed_images(n_counted: np.ndarray, share: float) -> np.ndarray:
    """``ceil(share * n)`` per neuron: the images a node must hold to cover the share."""
    if not 0 < share <= 1:
        raise ValueError(f"concept share must be in (0, 1], got {share}")
    return np.ceil(np.asarray(n_counted, dtype=np.float64) * share - SHARE_TOLERANCE).astype(np.int64)


def admissible_nodes(hierarchy: ClassHierarchy, max_concept_classes: float) -> np.ndarray:
    """bool (nodes,): nodes spanning at most ``max_concept_classes`` of the dataset's classes."""
    if not 0 < max_concept_classes <= 1:
        raise ValueError(f"max_concept_classes must be in (0, 1], got {max_concept_classes}")
    return hierarchy.classes_under <= max_concept_classes * hierarchy.n_classes + SHARE_TOLERANCE


def _check_cof(cof: np.ndarray, hierarchy: ClassHierarchy) -> np.ndarray:
    cof = np.asarray(cof)
    if cof.ndim != 2 or cof.shape[1] != hierarchy.n_classes:
        raise ValueError(f"CoF must be (neurons, {hierarchy.n_classes}), got {cof.shape}")
    if not np.issubdtype(cof.dtype, np.integer) or (cof.size and cof.min() < 0):
        raise ValueError("CoF must hold non-negative integer counts")
    return cof.astype(np.int64)


def find_concepts(cof: np.ndarray, hierarchy: ClassHierarchy, share: float, max_concept_classes: float) -> Concepts:
    """Concept and semantic facet of every CoF row (see the module docstring)."""
    cof = _check_cof(cof, hierarchy)
    n = cof.sum(axis=1)
    need = needed_images(n, share)
    coverage = exact_matmul(cof, hierarchy.covers)  # (neurons, nodes)
    ok = (coverage >= need[:, None]) & admissible_nodes(hierarchy, max_concept_classes)[None, :] & (n > 0)[:, None]
    # depth first, then coverage; argmax takes the first maximum = the lowest node id
    key = hierarchy.depth[None, :].astype(np.int64) * (int(n.max(initial=0)) + 1) + coverage
    key = np.where(ok, key, -1)
    best = key.argmax(axis=1) if key.size else np.zeros(len(cof), dtype=np.int64)
    found = ok.any(axis=1)
    node = np.where(found, best, -1)
    covered = np.where(found, coverage[np.arange(len(cof)), best], 0)
    facet = np.where(n == 0, DEAD, np.where(cof.max(axis=1, initial=0) >= need, SF,
                                               np.where(found, CONCEPT, MF))).astype(object)
    return Concepts(node.astype(np.int64), covered.astype(np.int64), n, facet)


def spread_sums(cof: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """int (neurons,): ``c^T D c``, the summed path distance over ordered pairs of images."""
    cof = np.asarray(cof, dtype=np.int64)
    return np.einsum("nc,nc->n", exact_matmul(cof, distance), cof)


def semantic_spread(cof: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """float (neurons,): mean path distance between two distinct counted images; NaN for n < 2."""
    cof = np.asarray(cof, dtype=np.int64)
    n = cof.sum(axis=1)
    pairs = n * (n - 1)
    out = np.full(len(cof), np.nan)
    ok = pairs > 0
    out[ok] = spread_sums(cof[ok], distance) / pairs[ok]
    return out


def chance_spread(class_sizes: np.ndarray, distance: np.ndarray) -> float:
    """Mean path distance over all pairs of distinct dataset images (the null's exact mean)."""
    sizes = np.asarray(class_sizes, dtype=np.int64)
    total = int(sizes.sum())
    if total < 2:
        return float("nan")
    return float(sizes @ np.asarray(distance, dtype=np.int64) @ sizes) / (total * (total - 1))


def null_draws(image_classes: np.ndarray, length: int, draws: int, seed: int) -> np.ndarray:
    """int (draws, length): the classes of ``draws`` random sequences of distinct dataset images.

    Parameters
    ----------
    image_classes
        int (images,): every dataset image's class, in content order
        (`neurofacets.cof.content_order`).
    length
        Images per sequence.
    draws
        Number of sequences.
    seed
        Each sequence is ``length`` positions in ``image_classes`` drawn without replacement,
        in random order, by ``numpy.random.default_rng([seed, length])``: its first n images
        are a uniformly random set of n images for every n <= length, and the same photos
        meet the same draws whatever their classes are named or numbered.
    """
    image_classes = np.asarray(image_classes)
    if image_classes.ndim != 1 or not np.issubdtype(image_classes.dtype, np.integer) or (
            image_classes.size and image_classes.min() < 0):
        raise ValueError(f"image_classes must be a 1-d array of class indices >= 0, got {image_classes.dtype} "
                         f"{image_classes.shape}")
    total = len(image_classes)
    if not 0 <= length <= total:
        raise ValueError(f"cannot draw {length} of {total} images")
    rng = np.random.default_rng([seed, length])
    picks = np.stack([rng.choice(total, size=length, replace=False) for _ in range(draws)]) if draws else (
        np.zeros((0, length), dtype=np.int64))
    return image_classes.astype(np.int64)[picks]


def prefix_spread_sums(sequences: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """int (draws, length + 1): ``c^T D c`` of the first n classes of each sequence, n = 0..length.

    Built one image at a time: adding class x to a set with counts c adds ``2 (D c)[x]``
    (D has a zero diagonal), so all prefixes cost one pass.
    """
    sequences = np.asarray(sequences, dtype=np.int64)
    distance = np.asarray(distance, dtype=np.int64)
    n_draws, length = sequences.shape
    out = np.zeros((n_draws, length + 1), dtype=np.int64)
    dc = np.zeros((n_draws, len(distance)), dtype=np.int64)  # D c of each draw's current set
    rows = np.arange(n_draws)
    for step in range(length):
        x = sequences[:, step]
        out[:, step + 1] = out[:, step] + 2 * dc[rows, x]
        dc += distance[x]
    return out


def spread_p_values(
    cof: np.ndarray, image_classes: np.ndarray, distance: np.ndarray, draws: int, seed: int,
    length: int | None = None,
) -> np.ndarray:
    """Lower-tail p-value of each neuron's spread against random image sets of its size.

    The null of a neuron with n counted images is the first n images of each of ``draws``
    random sequences (`null_draws` over ``image_classes``, every dataset image's class in
    content order) of ``length`` images (default: the largest n; the workflow passes the
    run's k, so every layer of a run meets the same draws). NaN for neurons with fewer than
    2 counted images or when ``draws`` is 0.
    """
    if draws < 0:
        raise ValueError(f"draws must be >= 0, got {draws}")
    image_classes = np.asarray(image_classes)
    if image_classes.size and image_classes.max() >= len(distance):
        raise ValueError(f"image_classes holds class {int(image_classes.max())}; the hierarchy's classes are "
                         f"0..{len(distance) - 1}")
    cof = np.asarray(cof, dtype=np.int64)
    n = cof.sum(axis=1)
    out = np.full(len(cof), np.nan)
    if draws == 0 or not (n >= 2).any():
        return out
    length = int(n.max()) if length is None else length
    if n.max() > length:
        raise ValueError(f"a neuron has {int(n.max())} counted images, more than the null's {length}")
    null = prefix_spread_sums(null_draws(image_classes, length, draws, seed), distance)
    observed = spread_sums(cof, distance)
    for size in np.unique(n[n >= 2]):  # one null column per set size, shared by its neurons
        mine = n == size
        column = np.sort(null[:, size])
        out[mine] = (1 + np.searchsorted(column, observed[mine], side="right")) / (1 + draws)
    return out


def level_metrics(cof: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray] | None:
    """Sparsity, flatness and MF of the CoF rows with classes merged into ``groups``.

    ``groups`` gives each class's group (any integer ids); None with fewer than 2 groups
    (sparsity and flatness need N >= 2).
    """
    cof = np.asarray(cof, dtype=np.int64)
    groups = np.asarray(groups)
    if groups.shape != (cof.shape[1],):
        raise ValueError(f"{len(groups)} group ids for {cof.shape[1]} classes")
    _, code = np.unique(groups, return_inverse=True)
    n_groups = int(code.max()) + 1 if len(code) else 0
    if n_groups < 2:
        return None
    merged = np.zeros((len(cof), n_groups), dtype=np.int64)
    np.add.at(merged.T, code, cof.T)
    sparsity = gini(merged)
    flat = flatness(merged)
    return {"sparsity": sparsity, "flatness": flat, "mf": mf_degree(sparsity, flat)}


def concept_label(name: str | None, share: float) -> str:
    """``dog.n.01 (87 %)``; empty without a concept."""
    if not name:
        return ""
    return f"{name} ({100 * share:.0f} %)"


def semantics_table(
    layer: str,
    cof: np.ndarray,
    hierarchy: ClassHierarchy,
    image_classes: np.ndarray,
    *,
    share: float,
    max_concept_classes: float,
    levels: Mapping[str, np.ndarray],
    draws: int,
    seed: int,
    null_length: int | None = None,
) -> pd.DataFrame:
    """The per-neuron table of one layer (``semantics/{layer}.csv``).

    Parameters
    ----------
    layer
        Layer name (first column).
    cof
        int (neurons, classes): the layer's CoF at class level.
    hierarchy
        The dataset's class hierarchy (classes in label order).
    image_classes
        int (images,): every dataset image's class (label order), in content order
        (`neurofacets.cof.content_order`): the spread's null draws these images.
    share, max_concept_classes
        See the module docstring.
    levels
        ``{level name: group id per class}``: e.g. ``depth4`` from
        `ClassHierarchy.level_groups`, ``coarse`` from the dataset's coarse labels.
        Levels with fewer than 2 groups are left out.
    draws, seed, null_length
        The spread's null (see `spread_p_values`); ``null_length`` is the length of
        its image sequences (the run's k; default: the largest n_counted).

    Returns
    -------
    pandas.DataFrame
        ``layer, neuron, n_counted, n_classes, top_class_share, semantic_facet, concept,
        concept_name, concept_share, concept_depth, concept_classes, concept_label,
        spread, spread_p, spread_q`` (Benjamini-Hochberg q-values of spread_p within the layer) and per level ``sparsity_<level>, flatness_<level>, mf_<level>``.
    """
    cof = _check_cof(cof, hierarchy)
    found = find_concepts(cof, hierarchy, share, max_concept_classes)
    h = hierarchy.hierarchy
    has = found.node >= 0
    n = found.n_counted
    with np.errstate(invalid="ignore", divide="ignore"):
        share_of = np.where(has, found.coverage / np.maximum(n, 1), np.nan)
        top_share = np.where(n > 0, cof.max(axis=1, initial=0) / np.maximum(n, 1), np.nan)
    names = [h.names[i] if i >= 0 else "" for i in found.node]
    table = pd.DataFrame({
        "layer": layer,
        "neuron": np.arange(len(cof)),
        "n_counted": n,
        "n_classes": (cof > 0).sum(axis=1),
        "top_class_share": top_share,
        "semantic_facet": found.facet,
        "concept": [h.nodes[i] if i >= 0 else "" for i in found.node],
        "concept_name": names,
        "concept_share": share_of,
        "concept_depth": np.where(has, hierarchy.depth[np.maximum(found.node, 0)], np.nan),
        "concept_classes": np.where(has, hierarchy.classes_under[np.maximum(found.node, 0)], 0),
        "concept_label": [concept_label(name, s) for name, s in zip(names, share_of)],
        "spread": semantic_spread(cof, hierarchy.distance),
        "spread_p": spread_p_values(cof, image_classes, hierarchy.distance, draws, seed, null_length),
    })
    table["spread_q"] = bh_q_values(table["spread_p"].to_numpy(np.float64))
    for level, groups in levels.items():
        metrics = level_metrics(cof, groups)
        if metrics is None:
            continue
        for key, values in metrics.items():
            table[f"{key}_{level}"] = values
    return table


def layer_summary_row(table: pd.DataFrame) -> dict[str, float]:
    """The statistics of one layer that the permutation null also computes.

    Fractions of each semantic facet (of all neurons), mean concept depth (neurons with a
    concept) and mean spread (neurons with n >= 2).
    """
    n = len(table)
    row: dict[str, float] = {f"frac_{facet}": float((table["semantic_facet"] == facet).sum() / n) if n else np.nan
                             for facet in SEMANTIC_FACETS}
    depth = table["concept_depth"].dropna()
    spread = table["spread"].dropna()
    row["mean_concept_depth"] = float(depth.mean()) if len(depth) else np.nan
    row["mean_spread"] = float(spread.mean()) if len(spread) else np.nan
    return row


def permutation_rows(
    cofs: Sequence[np.ndarray], hierarchy: ClassHierarchy, *, share: float, max_concept_classes: float
) -> list[dict[str, float]]:
    """`layer_summary_row` of CoF matrices recounted under permuted labels (no p-values)."""
    rows = []
    for cof in cofs:
        found = find_concepts(cof, hierarchy, share, max_concept_classes)
        has = found.node >= 0
        table = pd.DataFrame({
            "semantic_facet": found.facet,
            "concept_depth": np.where(has, hierarchy.depth[np.maximum(found.node, 0)], np.nan),
            "spread": semantic_spread(cof, hierarchy.distance),
        })
        rows.append(layer_summary_row(table))
    return rows
