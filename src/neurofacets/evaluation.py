"""How much is each neuron's verdict worth? Held-out accuracy, split-half reliability, significance.

Everything here works from the activations the run already stored (one read of a layer from
the shards, no second forward pass) and its top-k store. Definitions (docs/methods.md,
"Evaluation"):

- **Halves.** The images are split in two disjoint halves, stratified by class at the
  analysed label level: each class's images, in the order of a seeded permutation
  (``numpy.random.default_rng([seed, STREAM, SPLIT])``), go alternately to half 0 and half 1.
- **Explanation.** On one half, the neuron's top-k images (same k and tie rule as the run),
  their CoF row and, from it, its explanation as the run forms it: its *label*, the top
  classes ``metrics/{layer}.csv`` lists (up to :data:`~neurofacets.metrics.TOP_CLASSES`
  classes with the largest counts, ties to the lower class index) that recur, with at least
  :data:`MIN_LABEL_COUNT` counted images (one image of a class among k is what chance gives);
  and, when the run has a class hierarchy, its *concept* (the classes under the concept
  node, :func:`neurofacets.semantics.concepts.find_concepts`).
- **Held-out scores.** On the other half, the neuron's activation of every image is scored
  against the indicator "the image's class falls under the explanation": AUROC (with
  midranks for ties, as :func:`sklearn.metrics.roc_auc_score`), AUPRC (average precision,
  as :func:`sklearn.metrics.average_precision_score`) and the Pearson correlation. The two
  directions (explain on half 0, score on half 1, and back) are averaged.
- **Chance level.** The same scores for random explanations of the same size (classes drawn
  uniformly without replacement, seeded ``[seed, STREAM, CHANCE, draw]``, each draw for
  every neuron), averaged over ``chance_draws`` draws; ``*_chance_p95`` is their 95th
  percentile, and a label **holds** on held-out images when its AUROC exceeds that.
- **Split-half reliability.** Per neuron, the MF degree on each half, whether the concepts of
  the two halves are the same node or one lies above the other, the semantic facet of each
  half and the Jaccard index of the classes in the two top-k sets. The layer's Spearman rho
  of MF degree and Cohen's kappa of the facets come from these columns (:func:`layer_summary`).
- **Selectivity test.** The Gini sparsity of the neuron's CoF row against the same statistic
  with the images' labels permuted (class sizes kept; permutation p uses
  ``default_rng([seed, p])``, the generator of the run's other nulls), reusing the run's
  top-k sets: ``p = (1 + #{permuted >= observed}) / (1 + permutations)``, and
  Benjamini-Hochberg q-values within the layer. The same test with a labelling that is
  itself a permutation (``[seed, STREAM, FAKE_TRUTH]``) gives the false-positive rate the
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
from sklearn.metrics import cohen_kappa_score

from .cof import LabelLevel, count_cof, load_labels
from .metrics import assign_facets, bh_q_values, flatness, gini, mf_degree, top_class_indices
from .pathlike import PathLike
from .readers import DEAD, EVALUATION_SUMMARY_COLUMNS, read_evaluation, read_evaluation_summaries
from .semantics.checkpoint import has_hierarchy
from .semantics.concepts import find_concepts
from .semantics.stage import read_class_hierarchy
from .store import read_layer, write_csv
from .topk import TopK, read_topk, select_top_k

logger = logging.getLogger(__name__)

#: Seed streams of this module: ``default_rng([seed, STREAM, what, ...])``; distinct from the
#: ``[seed, p]`` label permutations the run's nulls and the selectivity test share.
STREAM = 0x5EED
SPLIT, CHANCE, FAKE_TRUTH = 1, 2, 3
Q_SIGNIFICANT = 0.05  # the q-value threshold the summary counts neurons under
CHANCE_QUANTILE = 95  # a label holds when its held-out AUROC exceeds this percentile of chance
MIN_LABEL_COUNT = 2  # a top class is part of a neuron's label when it recurs in its top-k images
CHANNEL_BLOCK = 64  # neurons scored together: the working copies are (images x 64)
SCORES = ("auroc", "auprc", "correlation")


def split_halves(codes: np.ndarray, seed: int) -> np.ndarray:
    """Half (0 or 1) of every image, stratified by class (see the module docstring).

    Parameters
    ----------
    codes
        int (images,): each image's class (column index at the analysed level).
    seed
        ``analysis.seed``.

    Returns
    -------
    numpy.ndarray
        int8 (images,). Each class's images are split as evenly as they can be (its half 0
        holds ``ceil(n / 2)``).
    """
    codes = np.asarray(codes)
    if codes.ndim != 1:
        raise ValueError(f"codes must be 1-d, got shape {codes.shape}")
    rng = np.random.default_rng([seed, STREAM, SPLIT])
    shuffled = rng.permutation(len(codes))
    # stable sort of the shuffled positions by class: each class's images in shuffled order
    by_class = shuffled[np.argsort(codes[shuffled], kind="stable")]
    first = np.searchsorted(codes[by_class], codes[by_class], side="left")
    half = np.empty(len(codes), dtype=np.int8)
    half[by_class] = (np.arange(len(codes)) - first) % 2
    return half


class HeldOutScorer:
    """Scores of explanations against one block of neurons' activations on held-out images.

    Everything that does not depend on the explanation (midranks, per-class sums, the
    descending order and its tie groups) is computed once; :meth:`score` then costs
    O(images x neurons) per explanation.

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
        self.class_size = np.bincount(codes, minlength=n_classes).astype(np.float64)
        ranks = stats.rankdata(values, axis=0)  # midranks: ties share their mean rank
        centred = values - values.mean(axis=0)
        self.sum_squares = (centred**2).sum(axis=0)
        self.rank_sums = self._class_sums(ranks, codes)  # (classes, neurons)
        self.centred_sums = self._class_sums(centred, codes)
        order = np.argsort(-values, axis=0, kind="stable")
        ordered = np.take_along_axis(values, order, axis=0)
        self.sorted_codes = codes[order]  # (images, neurons): classes, highest activation first
        # for each row of the descending order, the last row of its tie group: precision is
        # only defined at a threshold, i.e. after the whole group
        last = np.ones(ordered.shape, dtype=bool)
        last[:-1] = ordered[:-1] != ordered[1:]
        rows = np.where(last, np.arange(self.n_images)[:, None], self.n_images)
        self.group_end = np.minimum.accumulate(rows[::-1], axis=0)[::-1]

    def _class_sums(self, values: np.ndarray, codes: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n_classes, values.shape[1]))
        np.add.at(out, codes, values)
        return out

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
        members = np.asarray(members, dtype=bool)
        if members.shape != (self.n_neurons, self.n_classes):
            raise ValueError(f"members must be {(self.n_neurons, self.n_classes)}, got {members.shape}")
        n = self.n_images
        positives = members @ self.class_size
        negatives = n - positives
        defined = (positives > 0) & (negatives > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rank_sum = (members * self.rank_sums.T).sum(axis=1)
            auroc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
            share = positives / n
            correlation = ((members * self.centred_sums.T).sum(axis=1) / n) / np.sqrt(
                self.sum_squares / n * share * (1 - share))
            hit = members[np.arange(self.n_neurons)[None, :], self.sorted_codes]  # (images, neurons)
            true_positives = np.cumsum(hit, axis=0, dtype=np.int64)
            precision = np.take_along_axis(true_positives, self.group_end, axis=0) / (self.group_end + 1)
            auprc = (hit * precision).sum(axis=0) / positives
        correlation[self.sum_squares <= 0] = np.nan
        return {name: np.where(defined, value, np.nan)
                for name, value in (("auroc", auroc), ("auprc", auprc), ("correlation", correlation))}


def random_members(sizes: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """bool (neurons, classes): for each neuron ``sizes[n]`` distinct classes drawn uniformly."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if np.any((sizes < 0) | (sizes > n_classes)):
        raise ValueError(f"explanation sizes must be in 0..{n_classes}")
    keys = rng.random((len(sizes), n_classes))
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    return rank < sizes[:, None]


def top_class_members(cof: np.ndarray, min_count: int = MIN_LABEL_COUNT) -> np.ndarray:
    """bool (neurons, classes): each neuron's label, its listed top classes that recur.

    The classes ``metrics/{layer}.csv`` lists as the neuron's top classes
    (:func:`neurofacets.metrics.top_class_indices`) with at least ``min_count`` of its
    counted top-k images. A class met once among k images is what chance gives any class;
    a neuron with no recurring class has an empty label (its scores are NaN).
    """
    cof = np.asarray(cof)
    index, valid = top_class_indices(cof)
    valid &= np.take_along_axis(cof, index, axis=1) >= min_count
    members = np.zeros(cof.shape, dtype=bool)
    rows = np.broadcast_to(np.arange(len(cof))[:, None], index.shape)
    members[rows[valid], index[valid]] = True
    return members


def selectivity_p_values(topk: TopK, level: LabelLevel, permutations: int, seed: int) -> np.ndarray:
    """Upper-tail permutation p-value of each neuron's Gini sparsity under ``level``'s labels.

    ``(1 + #{p: gini_p >= gini}) / (1 + permutations)``, where ``gini_p`` is the neuron's
    Gini of its CoF row recounted with the labels permuted by ``default_rng([seed, p])``
    (class sizes kept). NaN for dead neurons.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    observed = gini(count_cof(topk, level))
    at_least = np.zeros(len(observed), dtype=np.int64)
    for p in range(permutations):
        permuted = gini(count_cof(topk, level.permuted(np.random.default_rng([seed, p]))))
        at_least += permuted >= observed
    out = (1 + at_least) / (1 + permutations)
    out[np.isnan(observed)] = np.nan
    return out


def fake_truth(level: LabelLevel, seed: int) -> LabelLevel:
    """``level`` with its labels permuted once (``[seed, STREAM, FAKE_TRUTH]``): a truth with no signal."""
    return level.permuted(np.random.default_rng([seed, STREAM, FAKE_TRUTH]))


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


def held_out_scores(values: np.ndarray, codes: np.ndarray, half: np.ndarray, explanations: Sequence[np.ndarray],
                    n_classes: int, chance_draws: int, seed: int, block: int = CHANNEL_BLOCK) -> dict[str, np.ndarray]:
    """Held-out scores of each half's explanations on the other half, both directions averaged.

    Parameters
    ----------
    values
        float (images, neurons) activations of every image.
    codes
        int (images,) class (column) of each image for this explanation's labelling.
    half
        int (images,) 0 or 1.
    explanations
        ``[members of half 0, members of half 1]``, bool (neurons, n_classes) each.
    chance_draws
        Random explanations of the same sizes per neuron and direction.

    Returns
    -------
    dict
        For each score in :data:`SCORES`: ``score`` (neurons,), ``score_chance`` (mean of the
        draws) and ``score_chance_p95``; NaN where a direction is undefined (the mean then
        rests on the other direction).
    """
    n_neurons = values.shape[1]
    out = {f"{name}{suffix}": np.full(n_neurons, np.nan) for name in SCORES for suffix in ("", "_chance", "_chance_p95")}
    sizes = [members.sum(axis=1) for members in explanations]
    # the random explanations, drawn once for every neuron of the layer (a layer's draws do
    # not depend on the block size)
    draws = [[random_members(sizes[h], n_classes, np.random.default_rng([seed, STREAM, CHANCE, h, d]))
              for d in range(chance_draws)] for h in (0, 1)]
    for start in range(0, n_neurons, block):
        cols = slice(start, min(start + block, n_neurons))
        true = {name: [] for name in SCORES}
        chance = {name: [] for name in SCORES}
        for h in (0, 1):
            test = half == 1 - h
            scorer = HeldOutScorer(values[test, cols], codes[test], n_classes)
            for name, score in scorer.score(explanations[h][cols]).items():
                true[name].append(score)
            drawn = [scorer.score(members[cols]) for members in draws[h]]
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
    return out


def _labels_json(members: np.ndarray, names: Sequence[str]) -> list[str]:
    return [json.dumps([str(names[c]) for c in np.flatnonzero(row)], ensure_ascii=False) for row in members]


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
    hierarchy=None,
    share: float = 0.8,
    max_concept_classes: float = 0.5,
) -> pd.DataFrame:
    """The per-neuron table ``evaluation/{layer}.csv`` (columns :data:`neurofacets.readers.EVALUATION_COLUMNS`).

    Parameters
    ----------
    layer
        Layer name.
    image_id, values, argmax, content_key, height, width
        The layer's activations over every computed image, sorted by id
        (:class:`neurofacets.store.LayerActivations`).
    topk
        The run's own top-k sets of the layer (for the selectivity test).
    level
        The labels at the analysed level (``analysis.level``).
    class_level
        The labels at class level (concepts live on the class hierarchy).
    top_k
        ``analysis.top_k``: each half keeps ``min(top_k, half size)`` images per neuron.
    seed, chance_draws, permutations
        ``analysis.seed``, ``evaluation.chance_draws``, ``evaluation.permutations``.
    hierarchy
        The run's :class:`~neurofacets.semantics.hierarchy.ClassHierarchy`, or None: no
        concept columns are filled.
    share, max_concept_classes
        ``semantics.concept_share`` and ``semantics.max_concept_classes``.
    """
    image_id = np.asarray(image_id)
    codes = level.codes(image_id)
    half = split_halves(codes, seed)
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
    scores = held_out_scores(values, codes, half, [v.top_classes for v in halves], level.n_columns,
                             chance_draws, seed)
    for name, column in scores.items():
        table[name] = column
    table["label_holds"] = scores["auroc"] > scores["auroc_chance_p95"]
    if hierarchy is not None:
        class_codes = class_level.codes(image_id)
        concept = held_out_scores(values, class_codes, half, [v.concept_members for v in halves],
                                  class_level.n_columns, chance_draws, seed)
        nodes = hierarchy.hierarchy.nodes
        table["concept_0"] = [nodes[i] if i >= 0 else "" for i in halves[0].concept]
        table["concept_1"] = [nodes[i] if i >= 0 else "" for i in halves[1].concept]
        for name, column in concept.items():
            table[f"concept_{name}"] = column
        table["concept_holds"] = concept["auroc"] > concept["auroc_chance_p95"]
        table["concept_agrees"] = related_concepts(hierarchy, halves[0].concept, halves[1].concept)
        table["semantic_facet_0"] = halves[0].semantic_facet
        table["semantic_facet_1"] = halves[1].semantic_facet
    table["mf_0"] = halves[0].mf
    table["mf_1"] = halves[1].mf
    table["class_jaccard"] = class_jaccard(halves[0].cof, halves[1].cof)
    p = selectivity_p_values(topk, level, permutations, seed)
    table["selectivity_p"] = p
    table["selectivity_q"] = bh_q_values(p)
    p_fake = selectivity_p_values(topk, fake_truth(level, seed), permutations, seed)
    table["selectivity_p_permuted"] = p_fake
    table["selectivity_q_permuted"] = bh_q_values(p_fake)
    return table


def with_facets(table: pd.DataFrame, rule: str | float) -> pd.DataFrame:
    """Every layer's evaluation rows plus ``facet_0``, ``facet_1`` under ``analysis.facet_threshold``.

    The facet of each half is decided as the run decides it (:func:`neurofacets.metrics.assign_facets`,
    a mean threshold over the MF degrees of that half in every layer).
    """
    table = table.copy()
    layers = table["layer"].to_numpy()
    for h in (0, 1):
        table[f"facet_{h}"] = assign_facets(table[f"mf_{h}"].to_numpy(np.float64), layers, rule)
    return table


def _kappa(first: pd.Series, second: pd.Series) -> float:
    """Cohen's kappa over the neurons alive on both halves; NaN when undefined (one category)."""
    alive = (first != DEAD) & (second != DEAD) & (first != "") & (second != "")
    a, b = first[alive].astype(str), second[alive].astype(str)
    if len(a) < 2 or len(set(a) | set(b)) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(cohen_kappa_score(a, b))


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
) -> pd.DataFrame:
    """One layer's evaluation (rule ``evaluate_layer``) -> ``evaluation/{layer}.csv``.

    Reads the layer once from every shard (images x neurons, as ``encode_topk`` does when it
    has no shard candidates) and the run's top-k store; see :func:`layer_evaluation`.
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
        permutations=permutations, hierarchy=hierarchy, share=share, max_concept_classes=max_concept_classes,
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
) -> pd.DataFrame:
    """Every layer's evaluation with the halves' facets, and the per-layer summary (rule ``evaluation_summary``).

    Writes ``evaluation/all_layers.csv`` (the layers' rows in network order plus ``facet_0``,
    ``facet_1``: :func:`with_facets`) and ``evaluation/summary.csv`` (one row per layer,
    :data:`neurofacets.readers.EVALUATION_SUMMARY_COLUMNS`); returns the summary.
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
    write_csv(all_layers_csv, table)
    write_csv(summary_csv, summary)
    return summary


def stack_evaluation_summaries(summary_csvs: Sequence[PathLike], out_csv: PathLike) -> pd.DataFrame:
    """Several runs' ``evaluation/summary.csv`` stacked into ``tables/compare_evaluation.csv``
    (rule ``compare_evaluation_table``): the headline table of a comparison's evaluation."""
    table = read_evaluation_summaries(summary_csvs)
    write_csv(out_csv, table, float_format="%.6g")
    return table
