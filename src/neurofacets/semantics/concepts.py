"""Each neuron described by the class hierarchy: concept, semantic spread, semantic facet.

All quantities derive from the neuron's CoF row ``c`` (counts of its counted top-k
images per class, DESIGN.md §3; ``n = sum(c)``) and the dataset's
:class:`~neurofacets.semantics.hierarchy.ClassHierarchy`:

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
  compared exactly on the integer sums ``c^T D c``. The draws for set size n use
  ``numpy.random.default_rng([seed, n])``, so they are the same for every neuron, layer
  and run of a dataset. The **chance spread** (the null's exact mean, whatever n) is the
  mean distance over all pairs of distinct dataset images, ``s^T D s / (N (N - 1))`` for
  class sizes s and N images.
- **Levels**: the CoF row with its classes merged into the nodes of the hierarchy cut at a
  depth (:meth:`ClassHierarchy.level_groups`), or into the dataset's coarse groups; Gini
  sparsity, flatness and MF degree of that shorter row (:mod:`neurofacets.metrics`, N =
  the number of groups).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import flatness, gini, mf_degree
from .hierarchy import ClassHierarchy

SEMANTIC_FACETS = ("SF", "concept", "MF", "dead")
SHARE_TOLERANCE = 1e-9  # share * n within this of an integer counts as that integer (0.8 * 50 = 40)


@dataclass(frozen=True)
class Concepts:
    """Per neuron: concept node (-1 for none), its coverage, facet; see the module docstring."""

    node: np.ndarray  # int (neurons,), -1 where no concept
    coverage: np.ndarray  # int (neurons,): images under the concept (0 where none)
    n_counted: np.ndarray  # int (neurons,)
    facet: np.ndarray  # object (neurons,): SEMANTIC_FACETS


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
    coverage = cof @ hierarchy.covers.astype(np.int64)  # (neurons, nodes)
    ok = (coverage >= need[:, None]) & admissible_nodes(hierarchy, max_concept_classes)[None, :] & (n > 0)[:, None]
    # depth first, then coverage; argmax takes the first maximum = the lowest node id
    key = hierarchy.depth[None, :].astype(np.int64) * (int(n.max(initial=0)) + 1) + coverage
    key = np.where(ok, key, -1)
    best = key.argmax(axis=1) if key.size else np.zeros(len(cof), dtype=np.int64)
    found = ok.any(axis=1)
    node = np.where(found, best, -1)
    covered = np.where(found, coverage[np.arange(len(cof)), best], 0)
    facet = np.where(n == 0, "dead", np.where(cof.max(axis=1, initial=0) >= need, "SF",
                                               np.where(found, "concept", "MF"))).astype(object)
    return Concepts(node.astype(np.int64), covered.astype(np.int64), n, facet)


def spread_sums(cof: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """int (neurons,): ``c^T D c``, the summed path distance over ordered pairs of images."""
    cof = np.asarray(cof, dtype=np.int64)
    return np.einsum("nc,nc->n", cof @ np.asarray(distance, dtype=np.int64), cof)


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


def null_spread_sums(class_sizes: np.ndarray, distance: np.ndarray, n: int, draws: int, seed: int) -> np.ndarray:
    """int (draws,): ``c^T D c`` of ``draws`` random sets of ``n`` dataset images.

    Each set is drawn without replacement from all images (multivariate hypergeometric
    class counts) with ``numpy.random.default_rng([seed, n])``.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    if not 0 <= n <= sizes.sum():
        raise ValueError(f"cannot draw {n} of {int(sizes.sum())} images")
    rng = np.random.default_rng([seed, n])
    counts = rng.multivariate_hypergeometric(sizes, n, size=draws)
    return spread_sums(counts, distance)


def spread_p_values(
    cof: np.ndarray, class_sizes: np.ndarray, distance: np.ndarray, draws: int, seed: int
) -> np.ndarray:
    """Lower-tail p-value of each neuron's spread against random image sets of its size.

    NaN for neurons with fewer than 2 counted images or when ``draws`` is 0.
    """
    if draws < 0:
        raise ValueError(f"draws must be >= 0, got {draws}")
    cof = np.asarray(cof, dtype=np.int64)
    n = cof.sum(axis=1)
    observed = spread_sums(cof, distance)
    out = np.full(len(cof), np.nan)
    if draws == 0:
        return out
    for size in np.unique(n[n >= 2]):  # one null per set size, shared by its neurons
        null = np.sort(null_spread_sums(class_sizes, distance, int(size), draws, seed))
        mine = n == size
        at_most = np.searchsorted(null, observed[mine], side="right")
        out[mine] = (1 + at_most) / (1 + draws)
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
    class_sizes: np.ndarray,
    *,
    share: float,
    max_concept_classes: float,
    levels: Mapping[str, np.ndarray],
    draws: int,
    seed: int,
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
    class_sizes
        int (classes,): images per class in the dataset (for the spread's null).
    share, max_concept_classes
        See the module docstring.
    levels
        ``{level name: group id per class}``: e.g. ``depth4`` from
        :meth:`ClassHierarchy.level_groups`, ``coarse`` from the dataset's coarse labels.
        Levels with fewer than 2 groups are left out.
    draws, seed
        The spread's null (see :func:`spread_p_values`).

    Returns
    -------
    pandas.DataFrame
        ``layer, neuron, n_counted, n_classes, top_class_share, semantic_facet, concept,
        concept_name, concept_share, concept_depth, concept_classes, concept_label,
        spread, spread_p`` and per level ``sparsity_<level>, flatness_<level>, mf_<level>``.
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
        "spread_p": spread_p_values(cof, class_sizes, hierarchy.distance, draws, seed),
    })
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
    """:func:`layer_summary_row` of CoF matrices recounted under permuted labels (no p-values)."""
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
