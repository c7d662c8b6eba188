"""How much is each neuron's verdict worth? Held-out accuracy, split-half reliability, significance.

Everything here works from the activations the run already stored (one read of a layer from
the shards, no second forward pass) and its top-k store. Definitions (docs/methods.md,
"Evaluation"):

- **Content order.** Every draw below (halves, null draws, permutations) acts on the images
  sorted by content key (then image id, which only decides between byte-identical files;
  [`neurofacets.cof.content_order`][]), and classes tied at a label's cut-off are all in it: the same photos
  give the same numbers whatever their class folders are called or in whatever order.
- **Halves.** The images are split in two disjoint halves, stratified by class at the
  analysed label level: each class's images, in the order of a seeded permutation
  (``numpy.random.default_rng([seed, STREAM, SPLIT])``) of the content order, go alternately
  to half 0 and half 1.
- **Explanation.** On one half, the neuron's top-k images (same k and tie rule as the run),
  their CoF row and, from it, its explanation as the run forms it: its *label*, the top
  classes ``metrics/{layer}.csv`` lists (count at least the
  `TOP_CLASSES`-th largest, every class tied there included) that
  recur, with at least `MIN_LABEL_COUNT` counted images (one image of a class among k
  is what chance gives); and, when the run has a class hierarchy, its *concept* (the classes
  under the concept node, `neurofacets.semantics.concepts.find_concepts`).
- **Held-out scores.** On the other half, the neuron's activation of every image is scored
  against the indicator "the image's class falls under the explanation": AUROC (with
  midranks for ties, as `sklearn.metrics.roc_auc_score`), AUPRC (average precision,
  as `sklearn.metrics.average_precision_score`) and the Pearson correlation. The two
  directions (explain on half 0, score on half 1, and back) are averaged.
- **Label test.** The null permutes the held-out images' labels: under draw d
  ([`null_orders`][], ``[seed, STREAM, CHANCE, direction, d // 64]``) a label that marks P
  held-out images marks instead a uniformly random set of P of them. Per direction
  ``p_h = (1 + #{d: AUROC_h,d >= AUROC_h}) / (1 + draws)`` (``evaluation.label_draws``;
  ``auto`` = ceil(2 neurons / 0.05)), ``label_p = min(1, 2 min(p_0, p_1))`` (Bonferroni: the
  directions are dependent), ``label_q`` its Benjamini-Hochberg q-value within the layer, and
  the label **holds** when ``label_q < 0.05``.
  The same for concepts. ``*_chance`` is the mean of the first ``chance_draws`` draws,
  ``*_chance_p95`` their 95th percentile (for reading).
- **Split-half reliability.** Per neuron, the MF degree on each half, whether the concepts of
  the two halves are the same node or one lies above the other, the semantic facet of each
  half and the Jaccard index of the classes in the two top-k sets. The layer's Spearman rho
  of MF degree and Cohen's kappa of the facets come from these columns ([`layer_summary`][]).
- **Selectivity test.** The Gini sparsity of the neuron's CoF row against the same statistic
  with the computed images' labels permuted in content order (class sizes kept; permutation p
  uses ``default_rng([seed, STREAM, SELECTIVITY, p])``), reusing the run's top-k sets: ``p = (1 + #{permuted >= observed}) / (1 + permutations)``, and
  Benjamini-Hochberg q-values within the layer. The same test with a labelling that is
  itself a permutation in content order (``[seed, STREAM, FAKE_TRUTH]``) gives the false-positive rate the
  summary reports beside the true labels' rate.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .bootstrap import facet_kappa, with_intervals
from .cof import LabelLevel, content_order, content_permuted, count_cof, load_labels
from .metrics import assign_facets, bh_q_values, flatness, gini, mf_degree, top_class_mask
from .pathlike import PathLike
from .readers import (
    DEAD,
    EVALUATION_HEADLINE_COLUMNS,
    EVALUATION_SUMMARY_COLUMNS,
    read_evaluation,
    read_evaluation_summaries,
    read_summary_draws,
)
from .semantics.checkpoint import has_hierarchy
from .semantics.concepts import find_concepts
from .semantics.stage import read_class_hierarchy
from .store import read_layer, write_csv
from .topk import TopK, read_topk, select_top_k

logger = logging.getLogger(__name__)

#: Seed streams of this module: ``default_rng([seed, STREAM, what, ...])``; distinct from the
#: ``[seed, p]`` label permutations of the run's null model. Every draw acts on the images in
#: content order ([`neurofacets.cof.content_order`][]), so it follows the pictures, not the class names.
STREAM = 0x5EED
SPLIT, CHANCE, FAKE_TRUTH, SELECTIVITY = 1, 2, 3, 4
Q_SIGNIFICANT = 0.05  # the q-value threshold of label_holds, concept_holds and the summary's counts
CHANCE_QUANTILE = 95  # *_chance_p95: a percentile of the chance draws, for reading only
MIN_LABEL_COUNT = 2  # a top class is part of a neuron's label when it recurs in its top-k images
CHANNEL_BLOCK = 64  # neurons scored together: the working copies are (images x 64)
DRAW_BLOCK = 64  # null draws generated together (one generator each block): fixed, so results do not depend on it
SCORES = ("auroc", "auprc", "correlation")


def split_halves(codes: np.ndarray, order: np.ndarray, seed: int) -> np.ndarray:
    """Half (0 or 1) of every image, stratified by class (see the module docstring).

    Parameters
    ----------
    codes
        int (images,): each image's class (column index at the analysed level).
    order
        The images' positions in content order ([`neurofacets.cof.content_order`][]): the seeded shuffle
        acts on this order, so the halves follow the pictures, not their class names.
    seed
        ``analysis.seed``.

    Returns
    -------
    numpy.ndarray
        int8 (images,). Each class's images are split as evenly as they can be (its half 0
        holds ``ceil(n / 2)``).
    """
    codes, order = np.asarray(codes), np.asarray(order)
    if codes.ndim != 1:
        raise ValueError(f"codes must be 1-d, got shape {codes.shape}")
    if order.shape != codes.shape:
        raise ValueError(f"order {order.shape} and codes {codes.shape} disagree")
    rng = np.random.default_rng([seed, STREAM, SPLIT])
    shuffled = order[rng.permutation(len(codes))]
    # stable sort of the shuffled positions by class: each class's images in shuffled order
    by_class = shuffled[np.argsort(codes[shuffled], kind="stable")]
    first = np.searchsorted(codes[by_class], codes[by_class], side="left")
    half = np.empty(len(codes), dtype=np.int8)
    half[by_class] = (np.arange(len(codes)) - first) % 2
    return half


class HeldOutScorer:
    """Scores of explanations against one block of neurons' activations on held-out images.

    Everything that does not depend on the explanation (midranks, centred values, the
    descending order and its tie groups) is computed once; `score_positives` then
    costs O(images x neurons) per explanation.

    Parameters
    ----------
    values
        float (images, neurons) activations on the held-out images.
    codes
        int (images,) class of each image, in ``0 .. n_classes - 1``.
    n_classes
        Number of classes (columns of the membership matrices).
    """

    def __init__(self, values: np.ndarray, codes: np.ndarray, n_classes: int) -> None:
        values = np.asarray(values, dtype=np.float64)
        codes = np.asarray(codes, dtype=np.int64)
        if values.ndim != 2 or codes.shape != (len(values),):
            raise ValueError(f"values (images, neurons) and codes (images,) disagree: {values.shape}, {codes.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("activations must be finite")
        self.n_images, self.n_neurons = values.shape
        self.n_classes = n_classes
        self.codes = codes
        self.ranks = stats.rankdata(values, axis=0)  # midranks: ties share their mean rank
        self.centred = values - values.mean(axis=0)
        self.sum_squares = (self.centred**2).sum(axis=0)
        self.order = np.argsort(-values, axis=0, kind="stable")  # (images, neurons): highest activation first
        ordered = np.take_along_axis(values, self.order, axis=0)
        # for each row of the descending order, the last row of its tie group: precision is
        # only defined at a threshold, i.e. after the whole group
        last = np.ones(ordered.shape, dtype=bool)
        last[:-1] = ordered[:-1] != ordered[1:]
        rows = np.where(last, np.arange(self.n_images)[:, None], self.n_images)
        self.group_end = np.minimum.accumulate(rows[::-1], axis=0)[::-1]

    def positives(self, members: np.ndarray) -> np.ndarray:
        """bool (images, neurons): the held-out images whose class is in each neuron's explanation."""
        members = np.asarray(members, dtype=bool)
        if members.shape != (self.n_neurons, self.n_classes):
            raise ValueError(f"members must be {(self.n_neurons, self.n_classes)}, got {members.shape}")
        return members.T[self.codes]

    def score(self, members: np.ndarray) -> dict[str, np.ndarray]:
        """AUROC, AUPRC and Pearson correlation of every neuron for its explanation.

        Parameters
        ----------
        members
            bool (neurons, classes): row n marks the classes of neuron n's explanation.

        Returns
        -------
        dict
            ``auroc``, ``auprc``, ``correlation``: float64 (neurons,), NaN where the
            explanation marks no held-out image or every one (and correlation also where
            the activations are constant).
        """
        return self.score_positives(self.positives(members))

    def score_positives(self, hit: np.ndarray) -> dict[str, np.ndarray]:
        """The scores of `score` for any positive images: bool (images, neurons)."""
        hit = np.asarray(hit, dtype=bool)
        if hit.shape != (self.n_images, self.n_neurons):
            raise ValueError(f"positives must be {(self.n_images, self.n_neurons)}, got {hit.shape}")
        n = self.n_images
        positives = hit.sum(axis=0).astype(np.float64)
        negatives = n - positives
        defined = (positives > 0) & (negatives > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rank_sum = np.where(hit, self.ranks, 0.0).sum(axis=0)
            auroc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
            share = positives / n
            correlation = (np.where(hit, self.centred, 0.0).sum(axis=0) / n) / np.sqrt(
                self.sum_squares / n * share * (1 - share))
            ordered_hit = np.take_along_axis(hit, self.order, axis=0)  # (images, neurons), best first
            true_positives = np.cumsum(ordered_hit, axis=0, dtype=np.int64)
            precision = np.take_along_axis(true_positives, self.group_end, axis=0) / (self.group_end + 1)
            auprc = (ordered_hit * precision).sum(axis=0) / positives
        correlation[self.sum_squares <= 0] = np.nan
        return {name: np.where(defined, value, np.nan)
                for name, value in (("auroc", auroc), ("auprc", auprc), ("correlation", correlation))}


def null_orders(seed: int, direction: int, block: int, n_images: int) -> np.ndarray:
    """Draws ``block * DRAW_BLOCK ..`` of the label null on the held-out images of ``direction``.

    int32 (DRAW_BLOCK, n_images): row r is a random order of the held-out images (their
    content-order positions, shuffled by ``default_rng([seed, STREAM, CHANCE, direction,
    block])``) for draw ``block * DRAW_BLOCK + r``. A label that marks P held-out images is
    scored, under a draw, against the first P images of its order: a uniformly random set of P
    held-out images, which is what permuting the held-out images' labels gives the label (its
    class sizes kept).
    """
    rng = np.random.default_rng([seed, STREAM, CHANCE, direction, block])
    return rng.permuted(np.broadcast_to(np.arange(n_images, dtype=np.int32), (DRAW_BLOCK, n_images)), axis=1)


def first_null_places(seed: int, direction: int, n_images: int, draws: int) -> np.ndarray:
    """int32 (draws, n_images): each held-out image's place in the order of each of the first
    ``draws`` draws ([`null_orders`][]); the positives of a label marking P images are those
    placed below P."""
    blocks = [null_orders(seed, direction, b, n_images) for b in range(-(-draws // DRAW_BLOCK))]
    orders = np.concatenate(blocks)[:draws] if blocks else np.empty((0, n_images), np.int32)
    places = np.empty_like(orders)
    np.put_along_axis(places, orders, np.broadcast_to(np.arange(n_images, dtype=np.int32), orders.shape), axis=1)
    return places


def top_class_members(cof: np.ndarray, min_count: int = MIN_LABEL_COUNT) -> np.ndarray:
    """bool (neurons, classes): each neuron's label, its listed top classes that recur.

    The classes ``metrics/{layer}.csv`` lists as the neuron's top classes
    ([`neurofacets.metrics.top_class_mask`][]: count at least the 5th largest, every class
    tied there included) with at least ``min_count`` of its counted top-k images. A class met
    once among k images is what chance gives any class; a neuron with no recurring class has an
    empty label (its scores are NaN).
    """
    cof = np.asarray(cof)
    return top_class_mask(cof) & (cof >= min_count)


def label_draws_for(n_neurons: int, label_draws: int | str) -> int:
    """The number of null draws of a layer's label test: ``label_draws``, or for ``auto``
    ``ceil(2 n_neurons / 0.05)``, the fewest with which the smallest p-value, 2 / (1 + draws)
    ([`label_p_values`][]), clears Benjamini-Hochberg at q < 0.05 alone among the layer's
    ``n_neurons`` tests."""
    if label_draws == "auto":
        return max(1, int(np.ceil(2 * n_neurons / Q_SIGNIFICANT)))
    if isinstance(label_draws, bool) or not isinstance(label_draws, (int, np.integer)) or label_draws < 1:
        raise ValueError(f"evaluation.label_draws must be 'auto' or an integer >= 1, got {label_draws!r}")
    return int(label_draws)


def _auroc_of_rank_sums(doubled_rank_sum: np.ndarray, positives: np.ndarray, n_images: int) -> np.ndarray:
    """AUROC from the sum of the positives' doubled midranks (integers, exact in float64): one
    formula, so equal rank sums give bit-identical AUROCs; NaN where the positives are none or all."""
    positives = np.asarray(positives, dtype=np.int64)
    doubled_rank_sum = np.asarray(doubled_rank_sum, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = (doubled_rank_sum - positives * (positives + 1)) / (2.0 * positives * (n_images - positives))
    return np.where((positives > 0) & (positives < n_images), auroc, np.nan)


def _doubled_ranks(values: np.ndarray) -> np.ndarray:
    """float64 (images, neurons): twice each column's midranks (integers, ties share them)."""
    out = np.empty(values.shape, dtype=np.float64)
    for start in range(0, values.shape[1], CHANNEL_BLOCK):
        cols = slice(start, start + CHANNEL_BLOCK)
        out[:, cols] = np.rint(2 * stats.rankdata(values[:, cols], axis=0))
    return out


class _NullRankSums:
    """Each neuron's AUROC under null draws on one direction's held-out images.

    Neurons whose labels mark the same number P of held-out images share, per draw, the
    positives "the first P of the draw's order": their doubled ranks (integers, exact sums in
    float64) at those images are gathered and summed together, or, where P > n / 2, those of
    the other n - P images subtracted from the total. A draw costs about sum(min(P, n - P))
    reads over the neurons.
    """

    def __init__(self, doubled_ranks: np.ndarray, positives: np.ndarray) -> None:
        self.n_images = doubled_ranks.shape[0]
        self.positives = np.asarray(positives, dtype=np.int64)
        defined = np.flatnonzero((self.positives > 0) & (self.positives < self.n_images))
        self.neurons = defined[np.argsort(self.positives[defined], kind="stable")]
        self.ranks = np.ascontiguousarray(doubled_ranks[:, self.neurons])  # columns grouped by P
        sizes = self.positives[self.neurons]
        starts = np.flatnonzero(np.r_[True, sizes[1:] != sizes[:-1]]) if len(sizes) else np.empty(0, int)
        self.bounds = np.r_[starts, len(sizes)]

    def aurocs(self, orders: np.ndarray, budget: int = 1 << 22) -> np.ndarray:
        """float (draws, neurons) for int (draws, images) orders ([`null_orders`][])."""
        n = self.n_images
        total = n * (n + 1)  # twice the sum of the ranks 1..n (midranks keep it)
        out = np.full((len(orders), len(self.positives)), np.nan)
        for start, stop in zip(self.bounds[:-1], self.bounds[1:]):
            size = int(self.positives[self.neurons[start]])
            rest = size > n - size  # sum the n - P images after the label's, fewer
            images = orders[:, size:] if rest else orders[:, :size]
            width = max(1, budget // max(1, images.size))  # neurons gathered at once
            for first in range(start, stop, width):
                cols = slice(first, min(first + width, stop))
                summed = np.take(self.ranks[:, cols], images, axis=0).sum(axis=1)  # (draws, neurons)
                out[:, self.neurons[cols]] = _auroc_of_rank_sums(total - summed if rest else summed, size, n)
        return out


def label_p_values(values: np.ndarray, tests: Sequence[np.ndarray], hits: Sequence[np.ndarray], draws: int,
                   seed: int) -> np.ndarray:
    """Permutation p-value of each neuron's label on held-out images, both directions combined.

    Per direction h (explained on one half, scored on the other): ``p_h = (1 + #{d: AUROC_h,d >=
    AUROC_h}) / (1 + draws)``, where ``AUROC_h,d`` scores the first P held-out images of draw
    d's order ([`null_orders`][]) as the positives: the label's held-out images relabelled at
    random, an exact test of that direction. The two directions are dependent (the label of one
    half is formed from the images the other direction scores), so they are combined by
    Bonferroni: ``p = min(1, 2 min(p_0, p_1))``, a direction with no label counting as
    ``p_h = 1``; NaN where neither direction is scored.

    Parameters
    ----------
    values
        float (images, neurons) activations of every image.
    tests
        Per direction, the held-out images' positions in content order.
    hits
        Per direction, bool (held-out images, neurons): the images the label marks.
    draws
        Null draws ([`label_draws_for`][]).
    """
    if draws < 1:
        raise ValueError(f"label draws must be >= 1, got {draws}")
    per_direction = []
    for h, (test, hit) in enumerate(zip(tests, hits)):
        doubled = _doubled_ranks(np.asarray(values[test], dtype=np.float64))
        positives = hit.sum(axis=0)
        null = _NullRankSums(doubled, positives)
        # equal rank sums give bit-identical AUROCs: the comparison is exact
        observed = _auroc_of_rank_sums(np.where(hit, doubled, 0.0).sum(axis=0), positives, len(test))
        at_least = np.zeros(values.shape[1], dtype=np.int64)
        for block in range(-(-draws // DRAW_BLOCK)):
            rows = min(DRAW_BLOCK, draws - block * DRAW_BLOCK)
            at_least += (null.aurocs(null_orders(seed, h, block, len(test))[:rows]) >= observed).sum(axis=0)
        p = (1 + at_least) / (1 + draws)
        per_direction.append(np.where(np.isnan(observed), np.nan, p))
    both = np.stack(per_direction)
    p = np.minimum(1.0, 2 * np.nanmin(np.where(np.isnan(both), 1.0, both), axis=0))
    p[np.isnan(both).all(axis=0)] = np.nan
    return p


def selectivity_p_values(topk: TopK, level: LabelLevel, permutations: int, seed: int, image_id: np.ndarray,
                         order: np.ndarray) -> np.ndarray:
    """Upper-tail permutation p-value of each neuron's Gini sparsity under ``level``'s labels.

    ``(1 + #{p: gini_p >= gini}) / (1 + permutations)``, where ``gini_p`` is the neuron's
    Gini of its CoF row recounted with the labels of the computed images ``image_id`` permuted
    in content order (``order``, [`neurofacets.cof.content_permuted`][]) by
    ``default_rng([seed, STREAM, SELECTIVITY, p])`` (class sizes kept). NaN for dead neurons.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    observed = gini(count_cof(topk, level))
    at_least = np.zeros(len(observed), dtype=np.int64)
    for p in range(permutations):
        rng = np.random.default_rng([seed, STREAM, SELECTIVITY, p])
        permuted = gini(count_cof(topk, content_permuted(level, image_id, order, rng)))
        at_least += permuted >= observed
    out = (1 + at_least) / (1 + permutations)
    out[np.isnan(observed)] = np.nan
    return out


def fake_truth(level: LabelLevel, seed: int, image_id: np.ndarray, order: np.ndarray) -> LabelLevel:
    """``level`` with its labels permuted once in content order (``[seed, STREAM, FAKE_TRUTH]``):
    a truth with no signal."""
    return content_permuted(level, image_id, order, np.random.default_rng([seed, STREAM, FAKE_TRUTH]))


@dataclass(frozen=True)
class HalfVerdicts:
    """What one half says about every neuron of a layer (see the module docstring)."""

    cof: np.ndarray  # int (neurons, columns) at the analysed level
    mf: np.ndarray  # float (neurons,)
    top_classes: np.ndarray  # bool (neurons, columns)
    concept: np.ndarray | None  # int (neurons,) node, -1 none; None without a hierarchy
    concept_members: np.ndarray | None  # bool (neurons, classes)
    semantic_facet: np.ndarray | None  # object (neurons,)


def half_verdicts(topk: TopK, level: LabelLevel, class_level: LabelLevel, hierarchy=None,
                  share: float = 0.8, max_concept_classes: float = 0.5) -> HalfVerdicts:
    """The explanation and metrics of every neuron from one half's top-k sets."""
    cof = count_cof(topk, level)
    mf = mf_degree(gini(cof), flatness(cof))
    if hierarchy is None:
        return HalfVerdicts(cof, mf, top_class_members(cof), None, None, None)
    found = find_concepts(count_cof(topk, class_level), hierarchy, share, max_concept_classes)
    has = found.node >= 0
    members = np.zeros((len(cof), class_level.n_columns), dtype=bool)
    members[has] = hierarchy.covers[:, found.node[has]].T
    return HalfVerdicts(cof, mf, top_class_members(cof), found.node, members, found.facet)


def related_concepts(hierarchy, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per neuron: 1.0 when both nodes exist and are equal or one lies above the other, 0.0
    when they differ otherwise or only one exists, NaN when neither exists."""
    out = np.full(len(first), np.nan)
    above = hierarchy.hierarchy.up_distances  # a node's ancestors (itself included)
    for i, (a, b) in enumerate(zip(first.tolist(), second.tolist())):
        if a < 0 and b < 0:
            continue
        if a < 0 or b < 0:
            out[i] = 0.0
            continue
        out[i] = float(a == b or a in above(b) or b in above(a))
    return out


def class_jaccard(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Jaccard index of the classes present in two CoF rows per neuron; NaN when both are empty."""
    a, b = np.asarray(first) > 0, np.asarray(second) > 0
    union = (a | b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, (a & b).sum(axis=1) / union, np.nan)


def held_out_scores(values: np.ndarray, codes: np.ndarray, half: np.ndarray, order: np.ndarray,
                    explanations: Sequence[np.ndarray], n_classes: int, chance_draws: int, label_draws: int,
                    seed: int, block: int = CHANNEL_BLOCK) -> dict[str, np.ndarray]:
    """Held-out scores of each half's explanations on the other half, both directions averaged,
    their chance levels and the label test.

    Parameters
    ----------
    values
        float (images, neurons) activations of every image.
    codes
        int (images,) class (column) of each image for this explanation's labelling.
    half
        int (images,) 0 or 1.
    order
        The images' positions in content order ([`neurofacets.cof.content_order`][]).
    explanations
        ``[members of half 0, members of half 1]``, bool (neurons, n_classes) each.
    chance_draws
        Null draws ([`null_orders`][]) averaged into the ``_chance`` columns: the first of the
        ``label_draws`` draws of the test.
    label_draws
        Null draws of the label test ([`label_p_values`][]).

    Returns
    -------
    dict
        For each score in `SCORES`: ``score`` (neurons,), ``score_chance`` (mean of the
        draws) and ``score_chance_p95``; NaN where a direction is undefined (the mean then
        rests on the other direction); and ``p`` ([`label_p_values`][]).
    """
    n_neurons = values.shape[1]
    out = {f"{name}{suffix}": np.full(n_neurons, np.nan) for name in SCORES for suffix in ("", "_chance", "_chance_p95")}
    tests = [order[half[order] == 1 - h] for h in (0, 1)]  # each direction's held-out images, in content order
    # per direction and chance draw: each held-out image's place (the first draws of the label test)
    places = [first_null_places(seed, h, len(test), chance_draws) for h, test in enumerate(tests)]
    for start in range(0, n_neurons, block):
        cols = slice(start, min(start + block, n_neurons))
        true = {name: [] for name in SCORES}
        chance = {name: [] for name in SCORES}
        for h, test in enumerate(tests):
            scorer = HeldOutScorer(values[test, cols], codes[test], n_classes)
            hit = scorer.positives(explanations[h][cols])
            for name, score in scorer.score_positives(hit).items():
                true[name].append(score)
            positives = hit.sum(axis=0)
            drawn = [scorer.score_positives(place[:, None] < positives[None, :]) for place in places[h]]
            for name in SCORES:
                chance[name].append(np.array([d[name] for d in drawn]).reshape(chance_draws, -1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN neuron's mean is NaN by definition
            for name in SCORES:
                out[name][cols] = np.nanmean(np.stack(true[name]), axis=0)
                if chance_draws:
                    per_draw = np.nanmean(np.stack(chance[name]), axis=0)  # (draws, neurons): directions averaged
                    out[f"{name}_chance"][cols] = np.nanmean(per_draw, axis=0)
                    out[f"{name}_chance_p95"][cols] = np.nanpercentile(per_draw, CHANCE_QUANTILE, axis=0)
    hits = [explanations[h].T[codes[test]] for h, test in enumerate(tests)]
    out["p"] = label_p_values(values, tests, hits, label_draws, seed)
    return out


def _labels_json(members: np.ndarray, names: Sequence[str]) -> list[str]:
    """Each label as a JSON list of its class names, sorted by name (then class index): the
    same classes give the same text whatever the class order."""
    names = [str(name) for name in names]
    return [json.dumps([names[c] for c in sorted(np.flatnonzero(row).tolist(), key=lambda c: (names[c], c))],
                       ensure_ascii=False) for row in members]


def layer_evaluation(
    layer: str,
    image_id: np.ndarray,
    values: np.ndarray,
    argmax: np.ndarray,
    content_key: np.ndarray,
    height: int,
    width: int,
    topk: TopK,
    level: LabelLevel,
    class_level: LabelLevel,
    *,
    top_k: int,
    seed: int,
    chance_draws: int,
    permutations: int,
    label_draws: int | str = "auto",
    hierarchy=None,
    share: float = 0.8,
    max_concept_classes: float = 0.5,
) -> pd.DataFrame:
    """The per-neuron table ``evaluation/{layer}.csv`` (columns `neurofacets.readers.EVALUATION_COLUMNS`).

    Parameters
    ----------
    layer
        Layer name.
    image_id, values, argmax, content_key, height, width
        The layer's activations over every computed image, sorted by id
        (`neurofacets.store.LayerActivations`).
    topk
        The run's own top-k sets of the layer (for the selectivity test).
    level
        The labels at the analysed level (``analysis.level``).
    class_level
        The labels at class level (concepts live on the class hierarchy).
    top_k
        ``analysis.top_k``: each half keeps ``min(top_k, half size)`` images per neuron.
    seed, chance_draws, permutations, label_draws
        ``analysis.seed``, ``evaluation.chance_draws``, ``evaluation.permutations``,
        ``evaluation.label_draws`` ([`label_draws_for`][]).
    hierarchy
        The run's `ClassHierarchy`, or None: no
        concept columns are filled.
    share, max_concept_classes
        ``semantics.concept_share`` and ``semantics.max_concept_classes``.
    """
    image_id = np.asarray(image_id)
    codes = level.codes(image_id)
    order = content_order(content_key, image_id)
    half = split_halves(codes, order, seed)
    draws = label_draws_for(values.shape[1], label_draws)
    halves = []
    for h in (0, 1):
        rows = np.flatnonzero(half == h)
        if len(rows) == 0:
            raise ValueError(f"layer {layer}: half {h} holds no image ({len(image_id)} images): too few to split")
        half_topk = select_top_k(layer, image_id[rows], values[rows], argmax[rows], top_k, height, width,
                                 content_key[rows])
        halves.append(half_verdicts(half_topk, level, class_level, hierarchy, share, max_concept_classes))
    n_neurons = values.shape[1]
    table = pd.DataFrame({"layer": layer, "neuron": np.arange(n_neurons)})
    table["n_counted_0"] = halves[0].cof.sum(axis=1)
    table["n_counted_1"] = halves[1].cof.sum(axis=1)
    table["top_classes_0"] = _labels_json(halves[0].top_classes, level.names)
    table["top_classes_1"] = _labels_json(halves[1].top_classes, level.names)
    scores = held_out_scores(values, codes, half, order, [v.top_classes for v in halves], level.n_columns,
                             chance_draws, draws, seed)
    for name in (f"{s}{suffix}" for s in SCORES for suffix in ("", "_chance", "_chance_p95")):
        table[name] = scores[name]
    table["label_p"] = scores["p"]
    table["label_q"] = bh_q_values(scores["p"])
    table["label_holds"] = table["label_q"] < Q_SIGNIFICANT
    if hierarchy is not None:
        class_codes = class_level.codes(image_id)
        concept = held_out_scores(values, class_codes, half, order, [v.concept_members for v in halves],
                                  class_level.n_columns, chance_draws, draws, seed)
        nodes = hierarchy.hierarchy.nodes
        table["concept_0"] = [nodes[i] if i >= 0 else "" for i in halves[0].concept]
        table["concept_1"] = [nodes[i] if i >= 0 else "" for i in halves[1].concept]
        for name in (f"{s}{suffix}" for s in SCORES for suffix in ("", "_chance", "_chance_p95")):
            table[f"concept_{name}"] = concept[name]
        table["concept_p"] = concept["p"]
        table["concept_q"] = bh_q_values(concept["p"])
        table["concept_holds"] = table["concept_q"] < Q_SIGNIFICANT
        table["concept_agrees"] = related_concepts(hierarchy, halves[0].concept, halves[1].concept)
        table["semantic_facet_0"] = halves[0].semantic_facet
        table["semantic_facet_1"] = halves[1].semantic_facet
    table["mf_0"] = halves[0].mf
    table["mf_1"] = halves[1].mf
    table["class_jaccard"] = class_jaccard(halves[0].cof, halves[1].cof)
    p = selectivity_p_values(topk, level, permutations, seed, image_id, order)
    table["selectivity_p"] = p
    table["selectivity_q"] = bh_q_values(p)
    p_fake = selectivity_p_values(topk, fake_truth(level, seed, image_id, order), permutations, seed, image_id, order)
    table["selectivity_p_permuted"] = p_fake
    table["selectivity_q_permuted"] = bh_q_values(p_fake)
    return table


def with_facets(table: pd.DataFrame, rule: str | float) -> pd.DataFrame:
    """Every layer's evaluation rows plus ``facet_0``, ``facet_1`` under ``analysis.facet_threshold``.

    The facet of each half is decided as the run decides it ([`neurofacets.metrics.assign_facets`][],
    a mean threshold over the MF degrees of that half in every layer).
    """
    table = table.copy()
    layers = table["layer"].to_numpy()
    for h in (0, 1):
        table[f"facet_{h}"] = assign_facets(table[f"mf_{h}"].to_numpy(np.float64), layers, rule)
    return table


def _kappa(first: pd.Series, second: pd.Series) -> float:
    """Cohen's kappa over the neurons alive on both halves; NaN when undefined (one category)."""
    return facet_kappa(first.to_numpy(dtype=object), second.to_numpy(dtype=object))


def _spearman(first: np.ndarray, second: np.ndarray) -> float:
    both = ~np.isnan(first) & ~np.isnan(second)
    if both.sum() < 3 or np.ptp(first[both]) == 0 or np.ptp(second[both]) == 0:
        return float("nan")
    return float(stats.spearmanr(first[both], second[both]).statistic)


def _median(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.median()) if len(values) else float("nan")


def _share(flags: pd.Series) -> float:
    flags = flags.dropna()
    return float(flags.astype(float).mean()) if len(flags) else float("nan")


def layer_summary(table: pd.DataFrame) -> dict[str, object]:
    """One layer's row of ``evaluation/summary.csv`` from its rows of ``evaluation/all_layers.csv``."""
    q = Q_SIGNIFICANT
    row: dict[str, object] = {"n_neurons": len(table), "n_scored": int(table["auroc"].notna().sum())}
    for name in SCORES:
        row[f"median_{name}"] = _median(table[name])
        row[f"median_{name}_chance"] = _median(table[f"{name}_chance"])
    row["frac_label_holds"] = _share(table["label_holds"].where(table["auroc"].notna()))
    has_concepts = "concept_auroc" in table.columns
    row["median_concept_auroc"] = _median(table["concept_auroc"]) if has_concepts else float("nan")
    row["median_concept_auroc_chance"] = _median(table["concept_auroc_chance"]) if has_concepts else float("nan")
    row["frac_concept_holds"] = (_share(table["concept_holds"].where(table["concept_auroc"].notna()))
                                 if has_concepts else float("nan"))
    row["mf_rho"] = _spearman(table["mf_0"].to_numpy(np.float64), table["mf_1"].to_numpy(np.float64))
    row["facet_kappa"] = _kappa(table["facet_0"], table["facet_1"])
    row["semantic_facet_kappa"] = (_kappa(table["semantic_facet_0"].fillna(""), table["semantic_facet_1"].fillna(""))
                                   if has_concepts else float("nan"))
    row["concept_agreement"] = _share(table["concept_agrees"]) if has_concepts else float("nan")
    row["mean_class_jaccard"] = float(table["class_jaccard"].mean()) if table["class_jaccard"].notna().any() else float("nan")
    for labels, column in (("true", "selectivity_q"), ("permuted", "selectivity_q_permuted")):
        scored = table[column].dropna()
        row[f"frac_selective_{labels}"] = float((scored < q).mean()) if len(scored) else float("nan")
    return row


def evaluate_layer(
    shard_paths: Sequence[PathLike],
    topk_path: PathLike,
    images_csv: PathLike,
    classes_csv: PathLike,
    hierarchy_csv: PathLike | None,
    *,
    level: str,
    top_k: int,
    seed: int,
    chance_draws: int,
    permutations: int,
    share: float,
    max_concept_classes: float,
    out_csv: PathLike,
    label_draws: int | str = "auto",
) -> pd.DataFrame:
    """One layer's evaluation (rule ``evaluate_layer``) -> ``evaluation/{layer}.csv``.

    Reads the layer once from every shard (images x neurons, as ``encode_topk`` does when it
    has no shard candidates) and the run's top-k store; see [`layer_evaluation`][].
    ``hierarchy_csv`` is ``semantics/hierarchy.csv`` (None, or a header-only file when the
    semantics stage is skipped: no concept columns).
    """
    if chance_draws < 1:
        raise ValueError(f"evaluation.chance_draws must be >= 1, got {chance_draws}")
    start = time.perf_counter()
    topk = read_topk(topk_path)
    labels = load_labels(images_csv, classes_csv)
    hierarchy = None
    if hierarchy_csv is not None and has_hierarchy(hierarchy_csv):
        hierarchy = read_class_hierarchy(hierarchy_csv)
    acts = read_layer(list(shard_paths), topk.layer)
    logger.info("layer %s: read %d images x %d neurons in %.1f s", topk.layer, *acts.max.shape,
                time.perf_counter() - start)
    table = layer_evaluation(
        topk.layer, acts.image_id, acts.max, acts.argmax, acts.content_key, acts.height, acts.width, topk,
        labels.level(level), labels.level("class"), top_k=top_k, seed=seed, chance_draws=chance_draws,
        permutations=permutations, label_draws=label_draws, hierarchy=hierarchy, share=share, max_concept_classes=max_concept_classes,
    )
    write_csv(out_csv, table)
    logger.info(
        "layer %s: median held-out AUROC %.3f (chance %.3f), %d of %d labels hold; %d selective at q < %.2f "
        "(%d with permuted labels); %.1f s", topk.layer, _median(table["auroc"]), _median(table["auroc_chance"]),
        int(table["label_holds"].sum()), len(table), int((table["selectivity_q"] < Q_SIGNIFICANT).sum()),
        Q_SIGNIFICANT, int((table["selectivity_q_permuted"] < Q_SIGNIFICANT).sum()), time.perf_counter() - start,
    )
    return table


def evaluation_summary(
    layer_csvs: Sequence[PathLike],
    layers: Sequence[str],
    facet_threshold: str | float,
    run: str,
    all_layers_csv: PathLike,
    summary_csv: PathLike,
    draws_csv: PathLike | None = None,
) -> pd.DataFrame:
    """Every layer's evaluation with the halves' facets, and the per-layer summary (rule ``evaluation_summary``).

    Writes ``evaluation/all_layers.csv`` (the layers' rows in network order plus ``facet_0``,
    ``facet_1``: `with_facets`) and ``evaluation/summary.csv`` (one row per layer,
    `neurofacets.readers.EVALUATION_SUMMARY_COLUMNS`); returns the summary.
    ``draws_csv`` (``bootstrap/summary_draws.csv``) gives the 95 % intervals of
    `neurofacets.readers.EVALUATION_HEADLINE_COLUMNS` (`neurofacets.bootstrap.with_intervals`);
    None leaves them empty.
    """
    if len(layer_csvs) != len(layers):
        raise ValueError(f"{len(layer_csvs)} evaluation tables for {len(layers)} layers")
    tables = []
    for path, layer in zip(layer_csvs, layers):
        table = read_evaluation(path)
        if set(table["layer"]) != {layer}:
            raise ValueError(f"{path}: expected rows of layer {layer!r}, found {sorted(set(table['layer']))}")
        tables.append(table.drop(columns="layer_index"))
    table = with_facets(pd.concat(tables, ignore_index=True), facet_threshold)
    rows = []
    for index, layer in enumerate(layers):
        mine = table[table["layer"] == layer]
        depth = index / (len(layers) - 1) if len(layers) > 1 else 0.0
        rows.append({"run": run, "layer": layer, "layer_index": index, "depth": depth, **layer_summary(mine)})
    summary = pd.DataFrame(rows, columns=list(EVALUATION_SUMMARY_COLUMNS))
    if draws_csv is not None:
        summary = with_intervals(summary, read_summary_draws(draws_csv), EVALUATION_HEADLINE_COLUMNS)
    write_csv(all_layers_csv, table)
    write_csv(summary_csv, summary)
    return summary


def stack_evaluation_summaries(summary_csvs: Sequence[PathLike], out_csv: PathLike) -> pd.DataFrame:
    """Several runs' ``evaluation/summary.csv`` stacked into ``tables/compare_evaluation.csv``
    (rule ``compare_evaluation_table``): the headline table of a comparison's evaluation."""
    table = read_evaluation_summaries(summary_csvs)
    write_csv(out_csv, table, float_format="%.6g")
    return table
