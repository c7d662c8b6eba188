"""Entry points of the semantics rules (rules/semantics.smk); no Snakemake needed.

- `link_hierarchy` (checkpoint ``semantics_hierarchy``): link the dataset's classes
  to the configured hierarchy and write ``semantics/hierarchy.csv``, the hierarchy
  restricted to them. A dataset whose classes cannot be linked gets a header-only file and
  a log line saying why; the workflow then builds nothing else of this stage.
- `layer_semantics` (rule ``semantics_layer``): ``semantics/{layer}.csv`` and the
  label-permutation null ``semantics/null/{layer}.csv`` (`semantics_and_null`).
- `semantics_summary` (rule ``semantics_summary``): ``semantics/summary.csv`` and
  ``tables/concepts.csv``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..cof import LabelLevel, Labels, content_order, content_permuted, count_cof, load_labels
from ..pathlike import PathLike
from ..readers import SEMANTICS_COLUMNS, layer_order, read_semantics_table
from ..store import read_image_keys, write_csv
from ..topk import TopK, read_topk
from .checkpoint import has_hierarchy
from .concepts import SEMANTIC_FACETS, chance_spread, layer_summary_row, permutation_rows, semantics_table
from .hierarchy import (
    ClassHierarchy,
    Hierarchy,
    class_hierarchy,
    hierarchy_from_edges,
    read_class_hierarchy,
    read_hierarchy_csv,
)
from .wordnet import is_wnid, load_wordnet

logger = logging.getLogger(__name__)

HIERARCHY_COLUMNS = ["node", "parent", "name", "depth", "label"]
P_SIGNIFICANT = 0.05


def load_hierarchy(source: str) -> Hierarchy:
    """``wordnet`` (the packaged WordNet 3.0 nouns) or the path of a ``class,parent`` CSV."""
    if source == "wordnet":
        return hierarchy_from_edges(load_wordnet(), "WordNet 3.0")
    return read_hierarchy_csv(source)


def class_nodes(classes: pd.DataFrame, hierarchy: Hierarchy, source: str) -> tuple[list[str] | None, str]:
    """Each class's node in ``hierarchy`` (label order), or None and why not.

    Candidates, first that links every class: the ``wnid`` column of ``classes.csv``, then
    ``class_id``, then ``class_name``. For WordNet a candidate must look like a WordNet id
    (``n`` + 8 digits).
    """
    tried = []
    for column in ("wnid", "class_id", "class_name"):
        if column not in classes.columns:
            continue
        values = [str(v) for v in classes[column].fillna("")]
        if source == "wordnet" and not any(is_wnid(v) for v in values):
            tried.append(f"{column} holds no WordNet ids (e.g. {values[0]!r})")
            continue
        missing = [v for v in values if v not in hierarchy.index]
        if not missing:
            return values, f"classes linked through column {column!r}"
        tried.append(f"{len(missing)} of {len(values)} {column} values are not in the hierarchy, e.g. {missing[:5]}")
    return None, "; ".join(tried) or "classes.csv has no wnid, class_id or class_name column"


def link_hierarchy(classes_csv: PathLike, source: str, out_csv: PathLike) -> ClassHierarchy | None:
    """Write ``semantics/hierarchy.csv`` for the dataset's classes (checkpoint ``semantics_hierarchy``).

    Parameters
    ----------
    classes_csv
        ``dataset/classes.csv`` (``label``, ``class_id``, ``class_name``[, ``wnid``]).
    source
        ``semantics.hierarchy``: ``wordnet`` or a CSV path (``none`` never reaches here).
    out_csv
        Output: the edge table of `ClassHierarchy.to_table`, or only its header when
        the classes cannot be linked (the stage is skipped).

    Returns
    -------
    ClassHierarchy or None
        None when skipped.
    """
    classes = pd.read_csv(classes_csv, dtype=str, keep_default_na=False)
    classes = classes.sort_values("label", key=lambda s: s.astype(int)).reset_index(drop=True)
    hierarchy = load_hierarchy(source)
    nodes, reason = class_nodes(classes, hierarchy, source)
    what = "WordNet 3.0" if source == "wordnet" else source
    if nodes is None:
        logger.warning("semantics stage skipped: the %d classes cannot be linked to %s: %s",
                       len(classes), what, reason)
        write_csv(out_csv, pd.DataFrame(columns=HIERARCHY_COLUMNS), float_format="%.6g")
        return None
    linked = class_hierarchy(hierarchy, nodes)
    write_csv(out_csv, linked.to_table(), float_format="%.6g")
    logger.info("semantics: %d classes in %s (%s): %d nodes, class depths %d..%d",
                len(nodes), what, reason, len(linked.hierarchy),
                linked.depth[linked.class_node].min(), linked.depth[linked.class_node].max())
    return linked


def _class_sizes(labels, n_classes: int) -> np.ndarray:
    codes = labels.level("class").code_by_image_id
    return np.bincount(codes[codes >= 0], minlength=n_classes).astype(np.int64)


def _levels(hierarchy: ClassHierarchy, depths: Sequence[int], labels) -> dict[str, np.ndarray]:
    levels = {f"depth{d}": hierarchy.level_groups(int(d)) for d in depths}
    if "coarse" in labels.class_table.columns:
        levels["coarse"] = labels.class_table["coarse"].astype(str).to_numpy()
    return levels


def semantics_and_null(
    topk: TopK,
    labels: Labels,
    hierarchy: ClassHierarchy,
    image_classes: np.ndarray,
    relabellings: Iterable[LabelLevel],
    *,
    share: float,
    max_concept_classes: float,
    levels: Sequence[int],
    draws: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One layer's semantics table and permutation null, given the draws' images and relabellings.

    Parameters
    ----------
    topk
        The layer's top-k sets; the CoF is recounted from them at class level.
    labels
        The dataset's labels (``load_labels``).
    hierarchy
        The dataset's class hierarchy.
    image_classes
        int (images,): the class of every computed image in content order: the spread's null
        draws image sets among them (`neurofacets.semantics.concepts.spread_p_values`).
    relabellings
        The permuted class labellings, one per row ``permutation`` 0, 1, ... of the null.
    share, max_concept_classes, levels, draws, seed
        The ``semantics`` settings and ``analysis.seed``.

    Returns
    -------
    tuple of pandas.DataFrame
        ``semantics/{layer}.csv`` and ``semantics/null/{layer}.csv`` (row ``permutation`` -1:
        the true labels).
    """
    level = labels.level("class")
    settings = dict(share=share, max_concept_classes=max_concept_classes)
    table = semantics_table(topk.layer, count_cof(topk, level), hierarchy, image_classes,
                            levels=_levels(hierarchy, levels, labels), draws=draws, seed=seed,
                            null_length=topk.k, **settings)
    shuffled = (count_cof(topk, relabelled) for relabelled in relabellings)
    null = pd.DataFrame([{"layer": topk.layer, "permutation": -1, **layer_summary_row(table)}] + [
        {"layer": topk.layer, "permutation": p, **row}
        for p, row in enumerate(permutation_rows(shuffled, hierarchy, **settings))
    ])
    return table, null


def layer_semantics(
    shard_paths: Sequence[PathLike],
    topk_path: PathLike,
    images_csv: PathLike,
    classes_csv: PathLike,
    hierarchy_csv: PathLike,
    *,
    share: float,
    max_concept_classes: float,
    levels: Sequence[int],
    draws: int,
    permutations: int,
    seed: int,
    out_csv: PathLike,
    null_csv: PathLike,
) -> pd.DataFrame:
    """One layer's concepts, spreads, level metrics and permutation null (rule ``semantics_layer``).

    `semantics_and_null` with every draw over the computed images in content order
    (`neurofacets.cof.content_order`; ``shard_paths``, the activation shards, are read for the
    images' ids and content keys only), so the same photos give the same numbers whatever
    their class folders are called or in whatever order: the spread's null draws image sets
    with ``numpy.random.default_rng([seed, k])`` (k the run's top-k size), and permutation p
    relabels the images with ``numpy.random.default_rng([seed, p])``
    (`neurofacets.cof.content_permuted`, the generator and order of the encode stage's
    null), keeping class sizes.
    """
    if permutations < 0:
        raise ValueError(f"permutations must be >= 0, got {permutations}")
    topk = read_topk(topk_path)
    labels = load_labels(images_csv, classes_csv)
    hierarchy = read_class_hierarchy(hierarchy_csv)
    level = labels.level("class")
    if hierarchy.n_classes != level.n_columns:
        raise ValueError(f"{hierarchy_csv} has {hierarchy.n_classes} classes, {classes_csv} {level.n_columns}")
    image_id, content_key = read_image_keys(shard_paths)
    order = content_order(content_key, image_id)
    try:
        image_classes = level.codes(image_id[order])
    except ValueError as err:
        raise ValueError(f"the shards {[str(p) for p in shard_paths]} do not match {images_csv}: {err}") from err
    relabellings = (content_permuted(level, image_id, order, np.random.default_rng([seed, p]))
                    for p in range(permutations))
    table, null = semantics_and_null(topk, labels, hierarchy, image_classes, relabellings,
                                     share=share, max_concept_classes=max_concept_classes, levels=levels,
                                     draws=draws, seed=seed)
    write_csv(out_csv, table, float_format="%.6g")
    write_csv(null_csv, null, float_format="%.6g")
    counts = table["semantic_facet"].value_counts().to_dict()
    logger.info("layer %s: semantic facets %s; %d permutations", topk.layer, counts, permutations)
    return table


SUMMARY_STATS = ("frac_SF", "frac_concept", "frac_MF", "frac_dead", "mean_concept_depth", "mean_spread")


def summary_rows(
    tables: Sequence[pd.DataFrame], nulls: Sequence[pd.DataFrame], layers: Sequence[str], chance: float, run: str
) -> pd.DataFrame:
    """Per layer: counts and fractions of each semantic facet, mean concept depth, mean
    spread, the chance spread, the share of neurons with spread p < 0.05 and with spread
    q < 0.05 (Benjamini-Hochberg within the layer), each level's mean
    finite MF, and the permutation null's mean of each statistic (``null_<stat>``)."""
    rows = []
    for index, (layer, table, null) in enumerate(zip(layers, tables, nulls)):
        permuted = null[null["permutation"] >= 0]
        row: dict[str, object] = {
            "run": run, "layer": layer, "layer_index": index,
            "depth": index / (len(layers) - 1) if len(layers) > 1 else 0.0, "n_neurons": len(table),
        }
        row.update({f"n_{f}": int((table["semantic_facet"] == f).sum()) for f in SEMANTIC_FACETS})
        row.update(layer_summary_row(table))
        row["chance_spread"] = chance
        p = table["spread_p"].dropna()
        row["frac_spread_p05"] = float((p < P_SIGNIFICANT).mean()) if len(p) else np.nan
        q = table["spread_q"].dropna()
        row["frac_spread_q05"] = float((q < P_SIGNIFICANT).mean()) if len(q) else np.nan
        for column in [c for c in table.columns if c.startswith("mf_")]:
            values = table[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            row[f"mean_{column}"] = float(values.mean()) if values.size else np.nan
        row["n_permutations"] = len(permuted)
        for stat in SUMMARY_STATS:
            values = permuted[stat].dropna()
            row[f"null_{stat}"] = float(values.mean()) if len(values) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def semantics_summary(
    semantics_csvs: Sequence[PathLike],
    null_csvs: Sequence[PathLike],
    layers_csv: PathLike,
    images_csv: PathLike,
    classes_csv: PathLike,
    hierarchy_csv: PathLike,
    *,
    run: str,
    out_summary: PathLike,
    out_concepts: PathLike,
) -> pd.DataFrame:
    """``semantics/summary.csv`` (`summary_rows`) and ``tables/concepts.csv`` (every neuron's concept)."""
    if len(semantics_csvs) != len(null_csvs):
        raise ValueError(f"{len(semantics_csvs)} semantics tables for {len(null_csvs)} null tables")
    order = layer_order(layers_csv)
    tables = {}
    nulls = {}
    for path, null_path in zip(semantics_csvs, null_csvs):
        table = read_semantics_table(path)
        layer = str(table["layer"].iloc[0]) if len(table) else Path(path).stem
        if set(table["layer"].astype(str)) != {layer} or layer not in order:
            raise ValueError(f"{path}: expected the rows of one layer of {layers_csv}")
        null = pd.read_csv(null_path)
        if set(null["layer"].astype(str)) != {layer}:
            raise ValueError(f"{null_path}: expected rows of layer {layer!r}")
        tables[layer], nulls[layer] = table, null
    present = [name for name in order if name in tables]
    labels = load_labels(images_csv, classes_csv)
    hierarchy = read_class_hierarchy(hierarchy_csv)
    chance = chance_spread(_class_sizes(labels, hierarchy.n_classes), hierarchy.distance)
    summary = summary_rows([tables[n] for n in present], [nulls[n] for n in present], present, chance, run)
    concepts = pd.concat([tables[n] for n in present], ignore_index=True)
    write_csv(out_concepts, concepts[list(SEMANTICS_COLUMNS)], float_format="%.6g")
    write_csv(out_summary, summary, float_format="%.6g")
    logger.info("semantics summary of %d layers; chance spread %.3f", len(present), chance)
    return summary


def runs_with_hierarchy(hierarchy_csvs: Sequence[PathLike], runs: Sequence[str], out_csv: PathLike) -> pd.DataFrame:
    """Which runs of a multi-run call have a class hierarchy -> ``semantics/runs.csv`` (run, has_hierarchy)."""
    if len(hierarchy_csvs) != len(runs):
        raise ValueError(f"{len(hierarchy_csvs)} hierarchy tables for {len(runs)} runs")
    table = pd.DataFrame({"run": list(runs), "has_hierarchy": [has_hierarchy(p) for p in hierarchy_csvs]})
    write_csv(out_csv, table, float_format="%.6g")
    skipped = table.loc[~table["has_hierarchy"], "run"].tolist()
    if skipped:
        logger.warning("runs without a class hierarchy (left out of the semantic comparison): %s", skipped)
    return table


def stack_semantics_summaries(summary_csvs: Sequence[PathLike], out_csv: PathLike) -> pd.DataFrame:
    """Several runs' ``semantics/summary.csv`` stacked into one table (the comparison's headline)."""
    from ..readers import read_semantics_summaries

    table = read_semantics_summaries(list(summary_csvs))
    write_csv(out_csv, table, float_format="%.6g")
    return table
