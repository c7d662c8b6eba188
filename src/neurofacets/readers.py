"""Reading the stages' tables and stores: the one place that knows their formats.

Every module that reads another stage's output (figures, gallery, summary, semantics,
neuron pictures) reads it through this module (docs/design.md, "File contract"), and the
writers take their column lists and facet labels from here, so a change of a column or
array name is a change here only:

- ``model/layers.csv``: ``layer`` (+ geometry); row order is network order.
- ``metrics/{layer}.csv`` / ``metrics/all_layers.csv``: `METRIC_COLUMNS`, plus
  `ALL_LAYER_COLUMNS` in the latter; ``facet`` is one of `FACETS`. Dead
  neurons: sparsity NaN, flatness -1, mf NaN. ``top_classes`` cells are JSON
  ([`parse_top_classes`][]).
- ``similarity/{layer}.zarr`` (xarray): ``pearson``, ``euclidean`` (neuron x neuron,
  NaN rows for excluded neurons), ``excluded`` (neuron,) bool; ``similarity/summary.csv``
  (`SIMILARITY_SUMMARY_COLUMNS`).
- ``summary.csv`` (`SUMMARY_COLUMNS`) and ``semantics/summary.csv``
  (`SEMANTICS_SUMMARY_COLUMNS`), one row per layer; several runs' stacked.
- ``dataset/images.csv``, ``dataset/skipped.csv``, ``activations/skipped.csv``: the images
  analysed of the entries listed ([`read_image_counts`][]).
The two stores whose reading is computation live beside their writers, and are read only
through their reader classes:

- ``patches/{layer}.zarr``: [`neurofacets.patches.PatchReader`][] (either store
  layout), ``n_counted``.
- ``ica/{layer}.zarr``: [`neurofacets.ica.IcaReader`][]: the ICs in the modes ``gray``
  (neurons, comps, side, side), ``rgb`` (..., 3) float32 and ``uint8``, computed from the
  stored unmixing matrices and the patch store; per-neuron status text.

Stores are opened lazily: a caller reads a block of neurons at a time, never a whole
layer's patches (VGG16 conv5: 512 x 100 x 196 x 196 x 3 bytes = 5.9 GB).

What each table, column and store means is documentation data here too:
`OUTPUT_TABLES`, `OUTPUT_STORES` and `COLUMN_MEANINGS`, from which
``python -m neurofacets.reference_docs`` writes ``docs/reference/outputs.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .logs import timed

METRIC_COLUMNS = (
    "layer", "neuron", "n_counted", "sparsity", "flatness", "mf", "p_value", "q_value", "p_empirical", "q_empirical",
    "top_classes",
)
ALL_LAYER_COLUMNS = (*METRIC_COLUMNS, "mf_norm", "facet")
#: The numbers of ``summary.csv`` and ``evaluation/summary.csv`` that carry a 95 % bootstrap
#: interval (`neurofacets.bootstrap`): ``X_ci_low`` and ``X_ci_high`` for each X, and one
#: column each in ``bootstrap/summary_draws.csv``.
SUMMARY_HEADLINE_COLUMNS = (
    "frac_mf", "frac_sf", "frac_dead", "mean_mf", "mean_mf_norm", "mean_sparsity", "mean_flatness",
)
EVALUATION_HEADLINE_COLUMNS = ("mf_rho", "facet_kappa", "mean_class_jaccard", "frac_label_holds")


def interval_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """``X_ci_low``, ``X_ci_high`` for each X of ``columns``, in that order."""
    return tuple(f"{column}_ci_{end}" for column in columns for end in ("low", "high"))


SUMMARY_COLUMNS = (
    "run", "layer", "layer_index", "depth", "n_neurons", "n_mf", "n_sf", "n_dead",
    "frac_mf", "frac_sf", "frac_dead", "mean_mf", "max_mf", "mean_mf_norm", "mean_sparsity", "mean_flatness",
    "mean_similarity", "mean_dissimilarity", "n_excluded", "preprocessing", "n_images", "n_images_listed",
    *interval_columns(SUMMARY_HEADLINE_COLUMNS),
)
SUMMARY_DRAWS_COLUMNS = ("run", "layer", "draw", *SUMMARY_HEADLINE_COLUMNS, *EVALUATION_HEADLINE_COLUMNS)
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
#: ``evaluation/{layer}.csv`` ([`neurofacets.evaluation`][]): the columns every run has; a run
#: with a class hierarchy adds `EVALUATION_CONCEPT_COLUMNS`, and ``evaluation/all_layers.csv``
#: adds ``facet_0``, ``facet_1``. Suffixes ``_0`` and ``_1`` name the two halves.
EVALUATION_COLUMNS = (
    "layer", "neuron", "n_counted_0", "n_counted_1", "top_classes_0", "top_classes_1",
    "auroc", "auroc_chance", "auroc_chance_p95", "auprc", "auprc_chance", "auprc_chance_p95",
    "correlation", "correlation_chance", "correlation_chance_p95", "label_p", "label_q", "label_holds",
    "mf_0", "mf_1", "class_jaccard",
    "selectivity_p", "selectivity_q", "selectivity_p_permuted", "selectivity_q_permuted",
)
EVALUATION_CONCEPT_COLUMNS = (
    "concept_0", "concept_1", "concept_auroc", "concept_auroc_chance", "concept_auroc_chance_p95",
    "concept_auprc", "concept_auprc_chance", "concept_auprc_chance_p95", "concept_correlation",
    "concept_correlation_chance", "concept_correlation_chance_p95", "concept_p", "concept_q", "concept_holds",
    "concept_agrees",
    "semantic_facet_0", "semantic_facet_1",
)
EVALUATION_SUMMARY_COLUMNS = (
    "run", "layer", "layer_index", "depth", "n_neurons", "n_scored",
    "median_auroc", "median_auroc_chance", "median_auprc", "median_auprc_chance",
    "median_correlation", "median_correlation_chance", "frac_label_holds",
    "median_concept_auroc", "median_concept_auroc_chance", "frac_concept_holds",
    "mf_rho", "facet_kappa", "semantic_facet_kappa", "concept_agreement", "mean_class_jaccard",
    "frac_selective_true", "frac_selective_permuted",
    *interval_columns(EVALUATION_HEADLINE_COLUMNS),
)
#: ``tables/beside_control.csv`` of a multi-run call (`neurofacets.beside_control`): one row
#: per run with a control, layer and headline number.
BESIDE_CONTROL_COLUMNS = (
    "run", "control", "layer", "layer_index", "depth", "number", "value", "value_ci_low", "value_ci_high",
    "control_value", "control_ci_low", "control_ci_high", "difference", "difference_ci_low", "difference_ci_high",
    "n_draws",
)
FACETS = ("MF", "SF", "dead")
#: The columns of the tables only the outputs reference lists (their writers' own order).
IMAGE_COLUMNS = ("image_id", "path", "label", "class_name", "shard")
CLASS_COLUMNS = ("label", "class_id", "class_name")
DATASET_SKIPPED_COLUMNS = ("path", "class_id", "reason")
EXTRACTION_SKIPPED_COLUMNS = ("image_id", "path", "reason")
LAYER_COLUMNS = ("layer", "module", "channels", "height", "width", "rf", "jump", "start", "kind", "field")
NULL_STATISTICS = ("mean_mf", "mean_similarity", "mean_dissimilarity")
NULL_COLUMNS = ("layer", "permutation", *NULL_STATISTICS, "n_dead", "n_excluded")
NULL_SUMMARY_COLUMNS = ("layer", "n_permutations", *(f"{part}_{s}" for s in NULL_STATISTICS
                                                      for part in ("observed", "null", "null_std", "z")))
FACET_TABLE_COLUMNS = ("layer", "rank", "neuron", "mf", "mf_norm", "p_value", "p_empirical", "sparsity",
                       "flatness", "n_counted", "top_classes")
HIERARCHY_COLUMNS = ("node", "parent", "name", "depth", "label")
MF, SF, DEAD = FACETS

# --- Documentation data: what each column and output means, in one place. Nothing here is
# read by the pipeline; python -m neurofacets.reference_docs writes docs/reference/outputs.md
# from it, and tests/test_reference_docs.py checks that every column above has a meaning.

#: Column name -> one-line meaning (units, NaN conventions), for every column of the column
#: tuples above and the extra columns of `OUTPUT_TABLES`. The exact definitions are in
#: docs/methods.md and docs/design.md §6.
COLUMN_MEANINGS: Mapping[str, str] = MappingProxyType({
    # identification
    "run": "the run's name (config `run`); tells stacked runs apart",
    "layer": "layer name (`conv3_1`, or the module path with `.` -> `-`)",
    "neuron": "channel number within the layer, from 0",
    "layer_index": "position of the layer among the run's analysed layers, network order, from 0",
    "depth": "relative depth: 0 for the first analysed layer .. 1 for the last",
    "n_neurons": "neurons (channels) of the layer",
    # encoding (docs/methods.md)
    "n_counted": "top-k images with activation > 0 (the ones that count in the CoF); 0 = dead neuron",
    "sparsity": "Gini index of the neuron's CoF row, in [0, 1 - 1/N] (N = number of classes); NaN for a dead neuron",
    "flatness": "2^H - 1 of the CoF row's normalised entropy H (paper eq. 1), in [0, 1]; -1 for a dead neuron",
    "mf": "MF degree = flatness / sparsity; NaN for a dead neuron, +inf for a perfectly even row",
    "p_value": "how unusual the MF degree is among the layer's other live neurons: one-sided normal tail "
               "(at most 0.5); NaN for dead neurons or fewer than 2 others; not a selectivity test",
    "q_value": "Benjamini-Hochberg q-value of `p_value` within the layer",
    "p_empirical": "the same tail as `p_value`, as the fraction of the other live neurons at least as extreme",
    "q_empirical": "Benjamini-Hochberg q-value of `p_empirical` within the layer",
    "top_classes": "JSON list of `[name, count]` pairs of the classes counted at least as often as the 5th most "
                   "frequent (all classes tied there included, so it may list more than 5), count descending, equal "
                   "counts by name; `[]` for a dead neuron (parse with `readers.parse_top_classes`)",
    "mf_norm": "MF degree min-max normalised over the finite MF of all layers' neurons (+inf gives 1; NaN if dead)",
    "facet_threshold": "the MF threshold applied to the row (`analysis.facet_threshold`), for reading only",
    "facet": "`MF` (mf above the threshold, decided exactly), `SF`, or `dead`",
    # summary.csv
    "n_mf": "neurons with facet `MF`",
    "n_sf": "neurons with facet `SF`",
    "n_dead": "dead neurons (no positive activation on any image)",
    "frac_mf": "share of the layer's neurons that are `MF`",
    "frac_sf": "share of the layer's neurons that are `SF`",
    "frac_dead": "share of the layer's neurons that are dead",
    "mean_mf": "mean of the finite MF degrees of the layer (NaN when none)",
    "max_mf": "largest finite MF degree of the layer (NaN when none)",
    "mean_mf_norm": "mean `mf_norm` of the live neurons",
    "mean_sparsity": "mean sparsity of the live neurons",
    "mean_flatness": "mean flatness of the live neurons",
    "mean_similarity": "mean off-diagonal Pearson correlation of CoF rows among the non-excluded neurons "
                       "(NaN with fewer than 2)",
    "mean_dissimilarity": "mean off-diagonal Euclidean distance of CoF rows among the non-excluded neurons "
                          "(NaN with fewer than 2)",
    "n_excluded": "neurons whose CoF row has zero variance (dead, or even), left out of the similarity matrices; "
                  "-1 in `summary.csv` when the layer has no similarity row",
    "preprocessing": "decode path, the preprocessing recipe (resize, crop, interpolation, mean, std) and precision of the run (`config.preprocessing_label`)",
    "n_images": "images the run analysed: the rows of `dataset/images.csv` less the decoding failures "
                "(`activations/skipped.csv`)",
    "n_images_listed": "entries the dataset listed: `n_images`, the decoding failures, and the rows of "
                       "`dataset/skipped.csv` (files refused, repeats, images over `dataset.images_per_class`)",
    # semantics (docs/design.md §6)
    "semantic_facet": "`SF` (one class covers the share), `concept`, `MF`, or `dead`",
    "concept": "node id of the deepest admissible hierarchy node covering `semantics.concept_share` "
               "of the counted images; empty when none",
    "concept_name": "the concept's name (e.g. `dog.n.01`); empty when none",
    "concept_label": "the concept's name and share, e.g. `dog.n.01 (87 %)`; empty when none",
    "concept_share": "share of the counted top-k images at or below the concept",
    "concept_depth": "the concept's depth in the hierarchy (longest parent chain to the root)",
    "concept_classes": "number of the dataset's classes at or below the concept",
    "n_classes": "distinct classes among the counted top-k images",
    "top_class_share": "share of the counted top-k images in the most frequent class",
    "spread": "mean hierarchy path distance between the classes of two distinct counted images "
              "(NaN for n_counted < 2)",
    "spread_p": "lower-tail p-value of `spread` against random image sets of the same size",
    "spread_q": "Benjamini-Hochberg q-value of `spread_p` within the layer",
    "frac_SF": "share of the layer's neurons whose semantic facet is `SF`",
    "frac_concept": "share of the layer's neurons whose semantic facet is `concept`",
    "frac_MF": "share of the layer's neurons whose semantic facet is `MF`",
    "mean_concept_depth": "mean depth of the layer's concepts",
    "mean_spread": "mean semantic spread of the layer's neurons",
    "chance_spread": "the spread of random image pairs of the dataset (the null's exact mean)",
    "null_frac_SF": "`frac_SF` with the labels permuted (mean over `semantics.permutations`)",
    "null_frac_concept": "`frac_concept` with the labels permuted (mean over permutations)",
    "null_frac_MF": "`frac_MF` with the labels permuted (mean over permutations)",
    "null_mean_concept_depth": "`mean_concept_depth` with the labels permuted (mean over permutations)",
    # evaluation (docs/evaluation.md); suffixes _0 and _1 name the two halves of the images
    "n_counted_0": "`n_counted` of the neuron's top-k set on half 0 of the images",
    "n_counted_1": "`n_counted` of the neuron's top-k set on half 1",
    "top_classes_0": "half 0's label: its top classes (ties at the cut-off all in) met at least twice, a JSON list "
                     "of class names sorted by name",
    "top_classes_1": "half 1's label, JSON like `top_classes_0`",
    "auroc": "held-out AUROC of the label against the activations on the other half, both directions "
             "averaged; NaN for an empty label",
    "auroc_chance": "mean AUROC with the held-out images' labels permuted (the first `evaluation.chance_draws` "
                    "draws of the label test)",
    "auroc_chance_p95": "95th percentile of the AUROC over those draws (for reading; the test is `label_p`)",
    "auprc": "held-out average precision of the label (chance: the share of the label's images); NaN for an empty label",
    "auprc_chance": "mean AUPRC with the held-out images' labels permuted",
    "auprc_chance_p95": "95th percentile of the AUPRC with the held-out images' labels permuted",
    "correlation": "held-out Pearson correlation of activation and label indicator; NaN for an empty label",
    "correlation_chance": "mean correlation with the held-out images' labels permuted",
    "correlation_chance_p95": "95th percentile of the correlation with the held-out images' labels permuted",
    "label_p": "permutation p-value of `auroc`: (1 + #{draws with the held-out labels permuted scoring >= auroc}) "
               "/ (1 + draws), draws `evaluation.label_draws`; NaN for an empty label",
    "label_q": "Benjamini-Hochberg q-value of `label_p` within the layer",
    "label_holds": "True when `label_q` < 0.05",
    "mf_0": "MF degree on half 0 (NaN if dead there)",
    "mf_1": "MF degree on half 1 (NaN if dead there)",
    "class_jaccard": "Jaccard index of the classes present in the two halves' top-k sets",
    "selectivity_p": "permutation p-value of the CoF row's Gini sparsity, (1 + #{permuted >= observed}) / "
                     "(1 + `evaluation.permutations`); NaN for a dead neuron",
    "selectivity_q": "Benjamini-Hochberg q-value of `selectivity_p` within the layer",
    "selectivity_p_permuted": "`selectivity_p` with labels permuted once beforehand (no signal)",
    "selectivity_q_permuted": "`selectivity_q` with labels permuted once beforehand: its share < 0.05 "
                              "is the false-positive rate",
    "concept_0": "half 0's concept (node id); empty when none",
    "concept_1": "half 1's concept (node id); empty when none",
    "concept_auroc": "held-out AUROC of the concept (its classes) on the other half, directions averaged",
    "concept_auroc_chance": "mean concept AUROC with the held-out images' labels permuted",
    "concept_auroc_chance_p95": "95th percentile of the concept AUROC with the held-out images' labels permuted",
    "concept_auprc": "held-out average precision of the concept",
    "concept_auprc_chance": "mean concept AUPRC with the held-out images' labels permuted",
    "concept_auprc_chance_p95": "95th percentile of the concept AUPRC with the held-out images' labels permuted",
    "concept_correlation": "held-out Pearson correlation of activation and concept indicator",
    "concept_correlation_chance": "mean concept correlation with the held-out images' labels permuted",
    "concept_correlation_chance_p95": "95th percentile of the concept correlation with the labels permuted",
    "concept_p": "permutation p-value of `concept_auroc`, as `label_p`",
    "concept_q": "Benjamini-Hochberg q-value of `concept_p` within the layer",
    "concept_holds": "True when `concept_q` < 0.05",
    "concept_agrees": "1: both halves' concepts equal or one above the other; 0: they differ or only one "
                      "has a concept; NaN: neither has one",
    "semantic_facet_0": "semantic facet on half 0",
    "semantic_facet_1": "semantic facet on half 1",
    "facet_0": "facet (`MF`/`SF`/`dead`) on half 0, under `analysis.facet_threshold` over that half's MF",
    "facet_1": "facet on half 1",
    "n_scored": "neurons with a held-out AUROC (a non-empty label)",
    "median_auroc": "median `auroc` over the scored neurons",
    "median_auroc_chance": "median `auroc_chance`",
    "median_auprc": "median `auprc`",
    "median_auprc_chance": "median `auprc_chance`",
    "median_correlation": "median `correlation`",
    "median_correlation_chance": "median `correlation_chance`",
    "frac_label_holds": "share of the scored neurons whose label holds",
    "median_concept_auroc": "median `concept_auroc` (NaN without a hierarchy)",
    "median_concept_auroc_chance": "median `concept_auroc_chance` (NaN without a hierarchy)",
    "frac_concept_holds": "share of the neurons with a scored concept whose concept holds (NaN without a hierarchy)",
    "mf_rho": "Spearman rho of the two halves' MF degrees (neurons with both non-NaN; +inf ranks highest)",
    "facet_kappa": "Cohen's kappa of the two halves' facets over neurons alive on both (NaN with one category)",
    "semantic_facet_kappa": "Cohen's kappa of the two halves' semantic facets (NaN without a hierarchy)",
    "concept_agreement": "mean of `concept_agrees` (NaN without a hierarchy)",
    "mean_class_jaccard": "mean `class_jaccard`",
    "frac_selective_true": "share of the neurons with `selectivity_q` < 0.05",
    "frac_selective_permuted": "share with `selectivity_q_permuted` < 0.05: the false-positive rate (expected <= 5 %)",
    # bootstrap draws and the untrained control beside each number (docs/controls.md)
    "control": "the run's untrained control (`random:<seed>` weights, nothing else different; docs/controls.md)",
    "number": "the headline number, named as its column in `summary.csv` or `evaluation/summary.csv`",
    "value": "the run's value of the number in the layer",
    "value_ci_low": "lower end of the run's 95 % interval of the number (the summary's `<number>_ci_low`); "
                    "empty without the bootstrap",
    "value_ci_high": "upper end of the run's interval (`<number>_ci_high`); empty without the bootstrap",
    "control_value": "the control's value of the number in the layer",
    "control_ci_low": "the control's `<number>_ci_low`; empty without the bootstrap",
    "control_ci_high": "the control's `<number>_ci_high`; empty without the bootstrap",
    "difference": "`value` - `control_value`: what training changed",
    "difference_ci_low": "lower end of the difference's 95 % interval: the draw-by-draw differences (run's draw - "
                         "control's draw, paired on the same resampled photos, draws where either is NaN left "
                         "out) centred on `difference` (docs/methods.md#intervals); empty without the bootstrap",
    "difference_ci_high": "upper end of the difference's 95 % interval; empty without the bootstrap",
    "n_draws": "draws with both values defined, that the difference's interval is taken over (0 without the bootstrap)",
    # bootstrap intervals (docs/methods.md#intervals)
    "draw": "bootstrap resample number, from 0; the same number is the same resample of the same photos in every run",
    **{f"{column}_ci_{end}": f"{word} end of the 95 % bootstrap interval of `{column}` (empty when "
       "`analysis.bootstrap` is 0)"
       for column in (*SUMMARY_HEADLINE_COLUMNS, *EVALUATION_HEADLINE_COLUMNS)
       for end, word in (("low", "lower"), ("high", "upper"))},
})


@dataclass(frozen=True)
class OutputTable:
    """A CSV table of a run, for the outputs reference (docs/reference/outputs.md).

    Parameters
    ----------
    path
        Path pattern under ``results/<run>/``.
    what
        What one row is, in a sentence.
    columns
        The columns every such table has (the reader checks them).
    reader
        The function a user calls, as a dotted name.
    optional
        Columns beyond ``columns`` that the table has in some runs or always (the reader
        does not check them).
    when
        When the ``optional`` columns are present.
    meanings
        ``(column, meaning)`` pairs for columns whose meaning in this table is its own (a
        hierarchy's ``depth``, a permutation's ``n_dead``); the rest are `COLUMN_MEANINGS`'.
    """

    path: str
    what: str
    columns: tuple[str, ...]
    reader: str
    optional: tuple[str, ...] = ()
    when: str = ""
    meanings: tuple[tuple[str, str], ...] = ()

    def meaning(self, column: str, meanings: Mapping[str, str] = COLUMN_MEANINGS) -> str:
        """What ``column`` means in this table (``KeyError`` when nothing says)."""
        return dict(self.meanings).get(column) or meanings[column]


@dataclass(frozen=True)
class OutputStore:
    """A zarr store of a run, for the outputs reference.

    Parameters
    ----------
    path
        Path pattern under ``results/<run>/``.
    what
        What it holds, in a sentence.
    arrays
        Array name -> ``"dtype (dims): meaning"``.
    reader
        The function or class a user calls, as a dotted name.
    """

    path: str
    what: str
    arrays: Mapping[str, str]
    reader: str


#: Every table with a reader here, in the order of the pipeline (docs/design.md "File contract").
OUTPUT_TABLES: tuple[OutputTable, ...] = (
    OutputTable("dataset/images.csv", "one row per image the run analyses (decoding failures aside: "
                "`activations/skipped.csv`), in the order of the activations", IMAGE_COLUMNS,
                "neurofacets.cof.load_labels", meanings=(
                    ("image_id", "row of the image in every activation and top-k store, from 0"),
                    ("path", "the image file, as the dataset listed it (relative to the directory Snakemake "
                             "runs in, or absolute)"),
                    ("label", "class number 0..C-1 (classes in sorted order; `dataset/classes.csv`)"),
                    ("class_name", "the class's name (its folder, the CSV's `class_name`, or its `class_id`)"),
                    ("shard", "the extraction job (`activations/shard-<n>.zarr`) that reads the image"))),
    OutputTable("dataset/classes.csv", "one row per class", CLASS_COLUMNS, "neurofacets.cof.load_labels",
                meanings=(("label", "class number 0..C-1, the CoF's column"),
                          ("class_id", "the class as the dataset names it (folder name, or the CSV's label)"),
                          ("class_name", "the class's display name (the CSV's `class_name`, else `class_id`)"))),
    OutputTable("dataset/skipped.csv", "one row per listed file the run leaves out before extraction",
                DATASET_SKIPPED_COLUMNS, "neurofacets.readers.read_image_counts",
                meanings=(("path", "the file as listed"),
                          ("class_id", "its class as listed"),
                          ("reason", "why: not an image, unreadable, listed again (same file and label), or over "
                                     "`dataset.images_per_class`"))),
    OutputTable("activations/skipped.csv", "one row per image that failed to decode during extraction (its "
                "activations are left out of every statistic)", EXTRACTION_SKIPPED_COLUMNS,
                "neurofacets.readers.read_image_counts",
                meanings=(("image_id", "the image's row in `dataset/images.csv`"),
                          ("path", "the image file"),
                          ("reason", "the decoding error"))),
    OutputTable("model/layers.csv", "one row per analysed layer, network order, with its map size and "
                "receptive-field geometry: the unit at map position (r, c) is centred on input pixel "
                "(start + r jump, start + c jump) and sees the rf x rf box around it", LAYER_COLUMNS,
                "neurofacets.readers.read_layers", meanings=(
                    ("module", "the module's path in the network (`features.0`, `blocks.3.mlp.act`)"),
                    ("channels", "neurons of the layer (channels, or a token layer's hidden units)"),
                    ("height", "map height at the run's input size (a token layer: patch-grid rows)"),
                    ("width", "map width (a token layer: patch-grid columns)"),
                    ("rf", "receptive-field side in input pixels"),
                    ("jump", "input pixels between neighbouring map positions (the stride from the input)"),
                    ("start", "input pixel on which map position (0, 0) is centred"),
                    ("kind", "output layout: `conv` (B, C, H, W), `channels_last` (B, H, W, C) or `tokens` "
                             "(B, T, D) ([Models](../models.md))"),
                    ("field", "how `rf` was found: `measured` on the graph, or for tokens `token patch + <m> px "
                              "(attention: whole image)`"))),
    OutputTable("metrics/{layer}.csv", "one row per neuron of the layer", METRIC_COLUMNS,
                "neurofacets.readers.read_metrics"),
    OutputTable("metrics/all_layers.csv", "every layer's metrics rows, layers in network order, with the "
                "normalised MF degree and the facet", ALL_LAYER_COLUMNS, "neurofacets.readers.read_metrics",
                optional=("facet_threshold",)),
    OutputTable("similarity/summary.csv", "one row per layer: the similarity of its neurons' CoF rows",
                SIMILARITY_SUMMARY_COLUMNS, "neurofacets.readers.read_similarity_summary",
                optional=("n_neurons",)),
    OutputTable("summary.csv", "one row per layer: the run's headline numbers", SUMMARY_COLUMNS,
                "neurofacets.readers.read_summaries"),
    OutputTable("bootstrap/summary_draws.csv", "one row per layer and bootstrap resample: that resample's "
                "headline numbers (summary.csv's and evaluation/summary.csv's), for intervals of differences "
                "between runs of the same photos", SUMMARY_DRAWS_COLUMNS, "neurofacets.readers.read_summary_draws"),
    OutputTable("evaluation/{layer}.csv", "one row per neuron: held-out scores, split-half verdicts, "
                "selectivity test", EVALUATION_COLUMNS, "neurofacets.readers.read_evaluation",
                optional=EVALUATION_CONCEPT_COLUMNS, when="with a class hierarchy"),
    OutputTable("evaluation/all_layers.csv", "every layer's evaluation rows in network order, with each "
                "half's facet", EVALUATION_COLUMNS, "neurofacets.readers.read_evaluation",
                optional=("facet_0", "facet_1", *EVALUATION_CONCEPT_COLUMNS),
                when="facet_0, facet_1 always; the concept columns with a class hierarchy"),
    OutputTable("evaluation/summary.csv", "one row per layer: the evaluation in numbers",
                EVALUATION_SUMMARY_COLUMNS, "neurofacets.readers.read_evaluation_summary"),
    OutputTable("null/{layer}.csv", "the layer's chance level: the observed statistics (permutation -1) and "
                "one row per label permutation (`analysis.null_permutations`)", NULL_COLUMNS, "pandas.read_csv",
                meanings=(("permutation", "-1: the observed labels; 0, 1, ...: a permutation of the labels"),
                          ("mean_mf", "mean of the finite MF degrees of the layer under these labels"),
                          ("mean_similarity", "`mean_similarity` of the layer under these labels"),
                          ("mean_dissimilarity", "`mean_dissimilarity` of the layer under these labels"),
                          ("n_dead", "dead neurons (the same under every permutation)"),
                          ("n_excluded", "neurons left out of the similarity matrices under these labels"))),
    OutputTable("null/summary.csv", "one row per layer: each statistic observed, its mean and standard "
                "deviation under label permutation, and its z-score", NULL_SUMMARY_COLUMNS, "pandas.read_csv",
                meanings=(
                    ("n_permutations", "label permutations (`analysis.null_permutations`)"),
                    *((f"observed_{s}", f"`{s}` with the observed labels") for s in NULL_STATISTICS),
                    *((f"null_{s}", f"mean of `{s}` over the permutations") for s in NULL_STATISTICS),
                    *((f"null_std_{s}", f"standard deviation (ddof 1) of `{s}` over the permutations; NaN "
                                        "with fewer than 2") for s in NULL_STATISTICS),
                    *((f"z_{s}", f"(observed - null) / null_std of `{s}`; NaN with fewer than 2 permutations")
                      for s in NULL_STATISTICS))),
    OutputTable("rsa/rsa.csv", "layer x layer: Spearman correlation of two layers' class RDMs "
                "(`rdm/{layer}.zarr`) over the class pairs defined in both; read with `index_col=0`",
                ("layer", "<layer>"), "pandas.read_csv",
                meanings=(("layer", "the row's layer"),
                          ("<layer>", "one column per analysed layer, network order: the RSA of the row's "
                                      "layer and this one (1 on the diagonal)"))),
    OutputTable("tables/table2_sf_neurons.csv", "paper Table 2: each layer's top single-facet neurons (lowest "
                "MF degree among the `SF` ones, `figures.examples_per_layer` per layer)", FACET_TABLE_COLUMNS,
                "pandas.read_csv", meanings=(("rank", "1 for the layer's top neuron of the facet, then 2, ..."),)),
    OutputTable("tables/table3_mf_neurons.csv", "paper Table 3: each layer's top multifaceted neurons (highest "
                "MF degree among the `MF` ones)", FACET_TABLE_COLUMNS, "pandas.read_csv",
                meanings=(("rank", "1 for the layer's top neuron of the facet, then 2, ..."),)),
    OutputTable("semantics/hierarchy.csv", "one row per (node, parent) edge of the class hierarchy the "
                "semantics stage used (empty without one)", HIERARCHY_COLUMNS,
                "neurofacets.semantics.hierarchy.read_class_hierarchy",
                meanings=(("node", "a node id (a WordNet id, or a name of your hierarchy CSV)"),
                          ("parent", "one of its parents (empty for a root)"),
                          ("name", "the node's name (`dog.n.01`)"),
                          ("depth", "longest parent chain from the node to a root"),
                          ("label", "the class number whose node it is; empty for an inner node"))),
    OutputTable("tables/beside_control.csv", "of a multi-run call (under the calling run): one row per run with "
                "an untrained control, layer and headline number: the run's value, the control's, the "
                "difference and its 95 % interval (docs/controls.md)", BESIDE_CONTROL_COLUMNS,
                "neurofacets.readers.read_beside_control"),
    OutputTable("semantics/{layer}.csv", "one row per neuron: its concept, semantic facet and spread "
                "(runs with a class hierarchy); also sparsity_<level>, flatness_<level>, mf_<level> per "
                "level of `semantics.levels` (`depth<d>`, and `coarse`)", SEMANTICS_COLUMNS,
                "neurofacets.readers.read_semantics_table"),
    OutputTable("semantics/summary.csv", "one row per layer: the semantic facets in numbers (runs with a "
                "class hierarchy); also n_ and null_ columns of each statistic, frac_spread_p05, "
                "mean_mf_<level>, n_permutations", SEMANTICS_SUMMARY_COLUMNS,
                "neurofacets.readers.read_semantics_summary"),
)

#: Every zarr store of a run (zarr v3, no consolidated metadata: ``consolidated=False``).
OUTPUT_STORES: tuple[OutputStore, ...] = (
    OutputStore("activations/shard-{shard}.zarr", "one extraction job's images: each layer's per-image "
                "maximum and its position (checksummed chunks)", MappingProxyType({
                    "image_id": "int64 (image,): ascending",
                    "content_key": "uint64 (image,): first 8 bytes of the file's SHA-256 (the tie key)",
                    "{layer}/max": "float32 (image, neuron): rectified maximum over the map; NaN fill",
                    "{layer}/argmax": "int32 (image, neuron): row-major map position r*width + c of the maximum",
                    "{layer}/topk/*": "the shard's own top-k candidates (image_id, value, argmax, content_key)",
                }), "neurofacets.store.read_layer"),
    OutputStore("topk/{layer}.zarr", "each neuron's k best images, rank 0 best", MappingProxyType({
        "image_id": "int64 (neuron, rank)",
        "value": "float32 (neuron, rank): the activation",
        "argmax": "int32 (neuron, rank): map position r*width + c (attrs height, width)",
        "content_key": "uint64 (neuron, rank): the tie key",
        "n_counted": "int32 (neuron,): ranks with activation > 0",
    }), "neurofacets.topk.read_topk"),
    OutputStore("cof/{layer}.zarr", "the CoF counts: each neuron's counted top-k images per class",
                MappingProxyType({
                    "cof": "int64 (neuron, class_name), coords label, class_id; each row sums to n_counted",
                    "cof_coarse": "int64 (neuron, coarse): when the dataset has coarse labels",
                    "n_counted": "int32 (neuron,)",
                }), "neurofacets.cof.read_cof"),
    OutputStore("bootstrap/{layer}.zarr", "each bootstrap resample's per-neuron metrics (attrs: resamples, "
                "seed, split_seed, k, n_images)", MappingProxyType({
                    "sparsity": "float64 (draw, neuron): Gini sparsity of the resample's CoF row; NaN dead",
                    "flatness": "float64 (draw, neuron): flatness of that row; -1 dead",
                    "mf_0": "float64 (draw, neuron): MF degree of the resampled evaluation half 0",
                    "mf_1": "float64 (draw, neuron): MF degree of the resampled evaluation half 1",
                    "class_jaccard": "float64 (draw, neuron): Jaccard index of the resampled halves' classes",
                    "label_p": "float64 (draw, neuron): p of the resampled halves' labels on the other resampled "
                               "half (Mann-Whitney normal approximation, directions combined as `label_p`); NaN "
                               "where neither is scored",
                }), "neurofacets.bootstrap.read_layer_draws"),
    OutputStore("similarity/{layer}.zarr", "neuron x neuron similarity of CoF rows", MappingProxyType({
        "pearson": "float64 (neuron_i, neuron_j): NaN rows and columns for excluded neurons",
        "euclidean": "float64 (neuron_i, neuron_j): NaN rows and columns for excluded neurons",
        "excluded": "bool (neuron_i,): zero-variance CoF row",
    }), "neurofacets.readers.read_similarity"),
    OutputStore("rdm/{layer}.zarr", "class x class dissimilarity (1 - Pearson of CoF columns)", MappingProxyType({
        "rdm": "float64 (class_i, class_j), coords name_i, name_j",
        "excluded": "bool (class_i,): zero-variance CoF column, NaN in rdm",
    }), "xarray.open_zarr"),
    OutputStore("patches/{layer}.zarr", "each neuron's receptive-field patches of its counted top-k images "
                "(layout `patches` or `images`, read alike)", MappingProxyType({
                    "n_counted": "int32 (neuron,)",
                    "image_id": "int64 (neuron, rank): -1 where no patch",
                    "top_left": "int32 (neuron, rank, 2): box corner in the preprocessed image",
                    "patches": "uint8 (neuron, rank, rf, rf, 3): layout `patches`",
                    "images": "uint8 (image, S, S, 3) with image_index int32 (neuron, rank): layout `images`",
                }), "neurofacets.patches.PatchReader"),
    OutputStore("ica/{layer}.zarr", "each neuron's ICA fits (gray, red, green, blue); the pictures are "
                "recomputed from the patch store on reading", MappingProxyType({
                    "unmixing": "float32 (neuron, fit, component, rank)",
                    "explained_variance": "float32 (neuron, fit, component)",
                    "status": "int8 (neuron, fit): 0 ok, 1 not_converged, 2 rank_deficient, 3 constant, "
                              "4 too_few_patches, 5 failed (attr status_codes)",
                    "n_iter, converged, residual, attempts": "(neuron, fit): the fit records",
                    "n_counted": "int32 (neuron,)",
                }), "neurofacets.ica.IcaReader"),
)


def parse_top_classes(text: Any) -> list[tuple[str, int]]:
    """A ``top_classes`` cell ([`neurofacets.metrics.top_classes`][]) -> ``[(name, count), ...]``.

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


@timed("read")
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


def read_image_counts(images_csv: str | Path, dataset_skipped_csv: str | Path,
                      extraction_skipped_csv: str | Path) -> tuple[int, int]:
    """How many images a run analysed, and how many entries its dataset listed.

    Parameters
    ----------
    images_csv, dataset_skipped_csv
        ``dataset/images.csv`` and ``dataset/skipped.csv``: every entry the dataset listed is
        a row of one of them (the skipped ones refused by name, kind or header, listed again,
        or over ``dataset.images_per_class``).
    extraction_skipped_csv
        ``activations/skipped.csv``: the images of ``images.csv`` extraction could not decode.

    Returns
    -------
    tuple
        ``(n_images, n_images_listed)``: the rows of ``images.csv`` less the decoding
        failures, and the rows of ``images.csv`` and ``dataset/skipped.csv`` together.
    """
    images = _read_csv(images_csv, ["image_id"], "image table", dtype=str)
    skipped = _read_csv(dataset_skipped_csv, ["path", "reason"], "dataset skipped table", dtype=str)
    failed = _read_csv(extraction_skipped_csv, ["image_id"], "extraction skipped table", dtype=str)
    unknown = sorted(set(failed["image_id"]) - set(images["image_id"]))
    if unknown:
        raise ValueError(f"{extraction_skipped_csv}: image ids {unknown[:5]} are not in {images_csv}")
    return len(images) - failed["image_id"].nunique(), len(images) + len(skipped)


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
    """``evaluation/summary.csv`` ([`neurofacets.evaluation.evaluation_summary`][]) in network order."""
    return _read_layer_summary(path, EVALUATION_SUMMARY_COLUMNS, "evaluation summary", layers)


def read_semantics_summary(path: str | Path, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """``semantics/summary.csv`` (`neurofacets.semantics.stage`) in network order."""
    return _read_layer_summary(path, SEMANTICS_SUMMARY_COLUMNS, "semantics summary", layers)


def read_semantics_table(path: str | Path) -> pd.DataFrame:
    """``semantics/{layer}.csv`` (`SEMANTICS_COLUMNS`), with empty strings (not NaN)
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
    """Several runs' ``summary.csv`` (`SUMMARY_COLUMNS`) stacked; the run names must differ."""
    if not paths:
        raise ValueError("no summary.csv given")
    tables = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"summary {path} does not exist (config compare_runs lists it)")
        tables.append(_read_csv(path, SUMMARY_COLUMNS, "neurofacets summary.csv"))
    return _stack_runs(tables, "summary.csv")


def read_summary_draws(path: str | Path) -> pd.DataFrame:
    """``bootstrap/summary_draws.csv`` (`SUMMARY_DRAWS_COLUMNS`): ``run``, ``layer`` (text),
    ``draw`` (int) and one float column per headline number; a layer's draws must be distinct.
    Only ``run``, ``layer`` and ``draw`` are required here: a reader of a number checks for its column.

    Raises
    ------
    ValueError
        When a column is missing, a (layer, draw) pair repeats, or a headline column is not numeric.
    """
    path = Path(path)
    table = _read_csv(path, SUMMARY_DRAWS_COLUMNS[:3], "bootstrap draws", dtype={"run": str, "layer": str})
    if table.empty:  # the bootstrap off: a header only
        return table.astype({"draw": int, **{column: float for column in table.columns[3:]}})
    if table["draw"].isna().any() or not pd.api.types.is_integer_dtype(table["draw"]):
        raise ValueError(f"{path}: column draw must hold whole numbers")
    repeated = table.loc[table.duplicated(["layer", "draw"]), ["layer", "draw"]]
    if len(repeated):
        first = repeated.iloc[0]
        raise ValueError(f"{path}: layer {first['layer']} has draw {first['draw']} twice")
    for column in table.columns[3:]:
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise ValueError(f"{path}: column {column} is not numeric")
        table[column] = table[column].astype(float)
    return table


def read_beside_control(path: str | Path) -> pd.DataFrame:
    """``tables/beside_control.csv`` (`BESIDE_CONTROL_COLUMNS`, `neurofacets.beside_control`)."""
    return _read_csv(path, BESIDE_CONTROL_COLUMNS, "beside-control table",
                     dtype={"run": str, "control": str, "layer": str, "number": str})


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


@timed("read")
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
    "ALL_LAYER_COLUMNS",
    "BESIDE_CONTROL_COLUMNS",
    "COLUMN_MEANINGS",
    "DEAD",
    "EVALUATION_COLUMNS",
    "EVALUATION_CONCEPT_COLUMNS",
    "EVALUATION_HEADLINE_COLUMNS",
    "EVALUATION_SUMMARY_COLUMNS",
    "FACETS",
    "METRIC_COLUMNS",
    "MF",
    "OUTPUT_STORES",
    "OUTPUT_TABLES",
    "OutputStore",
    "OutputTable",
    "SEMANTICS_COLUMNS",
    "SEMANTICS_SUMMARY_COLUMNS",
    "SF",
    "SIMILARITY_SUMMARY_COLUMNS",
    "SUMMARY_COLUMNS",
    "SUMMARY_DRAWS_COLUMNS",
    "SUMMARY_HEADLINE_COLUMNS",
    "Similarity",
    "interval_columns",
    "layer_order",
    "parse_top_classes",
    "present_layers",
    "read_beside_control",
    "read_evaluation",
    "read_evaluation_summaries",
    "read_evaluation_summary",
    "read_image_counts",
    "read_layers",
    "read_metrics",
    "read_semantics_summaries",
    "read_semantics_summary",
    "read_semantics_table",
    "read_similarity",
    "read_similarity_summary",
    "read_summaries",
    "read_summary_draws",
    "stores_by_layer",
]
