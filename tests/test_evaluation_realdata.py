"""The evaluation stage on real photos: labels that do not depend on class names, and a label
test that holds its level when the labels carry no signal.

Tiny-ImageNet validation photos (../shared/data/tiny-imagenet-val) as a class-folder dataset
(symbolic links) through the dataset stage, one extraction (VGG16 with random weights, 32 px,
two layers), encode_topk, the metrics and evaluate_layer at the default evaluation settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurofacets import encode, evaluation
from neurofacets.config import with_defaults
from neurofacets.readers import read_evaluation

pytestmark = pytest.mark.realdata

DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "tiny-imagenet-val"
N_CLASSES, PER_CLASS, TOP_K = 8, 16, 10
LAYERS = ["conv1_2", "conv2_1"]


def _photos() -> dict[str, list[Path]]:
    """{wnid: its first PER_CLASS photos} of the first N_CLASSES wnids."""
    if not (DATA / "val" / "val_annotations.txt").exists():
        pytest.skip(f"real photos not found: {DATA.resolve()} is absent (outside this workplace)")
    annotations = pd.read_csv(DATA / "val" / "val_annotations.txt", sep="\t", header=None, usecols=[0, 1],
                              names=["file", "wnid"])
    wnids = sorted(annotations["wnid"].unique())[:N_CLASSES]
    return {w: [(DATA / "val" / "images" / f).resolve()
                for f in sorted(annotations.loc[annotations["wnid"] == w, "file"])[:PER_CLASS]] for w in wnids}


def _run(tmp: Path, folders: dict[str, list[tuple[str, Path]]], weights: Path, shuffle: int | None = None) -> Path:
    """``folders``: {class folder: [(file name, photo)]} through the pipeline's functions; the
    results folder. ``shuffle``: the images' labels permuted with this seed (no signal)."""
    from neurofacets.datasets import dataset_from_config
    from neurofacets.extract import extract_shard

    root, out = tmp / "root", tmp / "results"
    for folder, files in folders.items():
        (root / folder).mkdir(parents=True)
        for name, photo in files:
            (root / folder / name).symlink_to(photo)
    config = with_defaults({
        "run": "names",
        "model": {"arch": "vgg16", "weights": "random:0", "layers": LAYERS},
        "dataset": {"format": "folder", "root": str(root), "images_per_class": None, "coarse_labels": None},
        "extraction": {"image_size": 32, "resize": 32, "batch_size": 64, "shards": 1, "device": "cpu", "workers": 0},
        "analysis": {"top_k": TOP_K},
    })
    dataset_from_config(config, None, out / "images.csv", out / "classes.csv", out / "skipped.csv")
    if shuffle is not None:
        images = pd.read_csv(out / "images.csv", keep_default_na=False)
        images["label"] = np.random.default_rng(shuffle).permutation(images["label"].to_numpy())
        images.to_csv(out / "images.csv", index=False)
    shard = out / "shard-000.zarr"
    extract_shard(config, out / "images.csv", 0, weights, shard)
    settings = config["evaluation"]
    for layer in LAYERS:
        topk, cof = out / "topk" / f"{layer}.zarr", out / "cof" / f"{layer}.zarr"
        encode.encode_layer([shard], out / "images.csv", out / "classes.csv", layer, TOP_K, topk, cof, config)
        encode.layer_metrics(cof, layer, "class", out / "metrics" / f"{layer}.csv")
        evaluation.evaluate_layer([shard], topk, out / "images.csv", out / "classes.csv", None, level="class",
                                  top_k=TOP_K, seed=0, chance_draws=settings["chance_draws"],
                                  label_draws=settings["label_draws"], permutations=settings["permutations"],
                                  share=0.8, max_concept_classes=0.5, out_csv=out / "evaluation" / f"{layer}.csv")
    evaluation.evaluation_summary([out / "evaluation" / f"{x}.csv" for x in LAYERS], LAYERS, "global_mean", "names",
                                  out / "evaluation" / "all_layers.csv", out / "evaluation" / "summary.csv")
    return out


@pytest.fixture(scope="module")
def weights(random_vgg16_weights):
    return random_vgg16_weights


@pytest.fixture(scope="module")
def named_runs(tmp_path_factory, weights):
    """The same photos twice: folders named by wnid, then renamed so that their order reverses
    (and the files renamed); with the map from the first names to the second."""
    photos = _photos()
    first = {w: [(p.name, p) for p in files] for w, files in photos.items()}
    rename = {w: f"{N_CLASSES - i:02d}-class-{w[::-1]}" for i, w in enumerate(photos)}
    second = {rename[w]: [(f"renamed_{j}.JPEG", p) for j, p in enumerate(files)] for w, files in photos.items()}
    return (_run(tmp_path_factory.mktemp("first"), first, weights),
            _run(tmp_path_factory.mktemp("renamed"), second, weights), rename)


def _label_sets(column: pd.Series, rename: dict[str, str] | None = None) -> list[frozenset]:
    rename = rename or {}
    return [frozenset(rename.get(name, name) for name in json.loads(cell)) for cell in column]


def test_class_folder_names_change_no_label_metric_or_evaluation_number(named_runs):
    first, second, rename = named_runs
    order_a = pd.read_csv(first / "classes.csv", keep_default_na=False)["class_name"].tolist()
    order_b = pd.read_csv(second / "classes.csv", keep_default_na=False)["class_name"].tolist()
    assert [rename[w] for w in order_a] == order_b[::-1]  # the class order did reverse
    tied_at_cut_off = 0
    for layer in LAYERS:
        ma = pd.read_csv(first / "metrics" / f"{layer}.csv", keep_default_na=False)
        mb = pd.read_csv(second / "metrics" / f"{layer}.csv", keep_default_na=False)
        for column in ma.columns:
            if column == "top_classes":
                a = [{(rename[n], c) for n, c in json.loads(cell)} for cell in ma[column]]
                assert a == [{tuple(pair) for pair in json.loads(cell)} for cell in mb[column]]
                tied_at_cut_off += sum(len(json.loads(cell)) > 5 for cell in ma[column])
            else:
                pd.testing.assert_series_equal(ma[column], mb[column], check_exact=True)
        ea, eb = read_evaluation(first / "evaluation" / f"{layer}.csv"), read_evaluation(second / "evaluation" / f"{layer}.csv")
        assert list(ea.columns) == list(eb.columns)
        for column in ea.columns:
            if column.startswith("top_classes_"):
                assert _label_sets(ea[column], rename) == _label_sets(eb[column])
            else:
                pd.testing.assert_series_equal(ea[column], eb[column], check_exact=True)
        # the runs are not trivial: labels to score and neurons that hold
        assert ea["auroc"].notna().sum() > 10 and ea["label_holds"].any()
    assert tied_at_cut_off > 0, "no neuron has classes tied at the cut-off of its top classes: the rule is untested"
    sa = pd.read_csv(first / "evaluation" / "summary.csv")
    sb = pd.read_csv(second / "evaluation" / "summary.csv")
    pd.testing.assert_frame_equal(sa, sb, check_exact=True)


def test_shuffled_labels_on_real_photos_hold_at_most_five_percent(tmp_path, weights):
    """The labels permuted over the photos (no signal): at the default evaluation settings at most
    5 % of the labels hold and at most 5 % of the neurons are selective."""
    photos = _photos()
    out = _run(tmp_path, {w: [(p.name, p) for p in files] for w, files in photos.items()}, weights, shuffle=3)
    for layer in LAYERS:
        table = read_evaluation(out / "evaluation" / f"{layer}.csv")
        scored = table[table["auroc"].notna()]
        assert len(scored) > 20
        assert scored["label_holds"].mean() <= 0.05, layer
        assert (table["selectivity_q"].dropna() < 0.05).mean() <= 0.05, layer


def test_class_folder_names_change_no_bootstrap_resample_or_interval(named_runs):
    """The bootstrap draws its resamples in content order: the same photos under other folder
    and file names give the same resampled metrics, draws and intervals (issue 29 item 3)."""
    from neurofacets.bootstrap import bootstrap_layer, draws_table, with_intervals
    from neurofacets.readers import EVALUATION_HEADLINE_COLUMNS

    first, second, _ = named_runs
    tables = []
    for out in (first, second):
        stores = [bootstrap_layer([out / "shard-000.zarr"], out / "images.csv", out / "classes.csv", layer,
                                  level="class", top_k=TOP_K, seed=0, split_seed=0, resamples=20,
                                  out=out / "bootstrap" / f"{layer}.zarr") for layer in LAYERS]
        tables.append((stores, draws_table(stores, LAYERS, "global_mean", "names")))
    (stores_a, draws_a), (stores_b, draws_b) = tables
    for a, b in zip(stores_a, stores_b):
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values)
    assert draws_a["frac_mf"].nunique() > 1  # the resamples differ from each other
    pd.testing.assert_frame_equal(draws_a, draws_b, check_exact=True)
    summary = pd.read_csv(first / "evaluation" / "summary.csv")
    pd.testing.assert_frame_equal(with_intervals(summary, draws_a, EVALUATION_HEADLINE_COLUMNS),
                                  with_intervals(summary, draws_b, EVALUATION_HEADLINE_COLUMNS), check_exact=True)


def test_label_holds_interval_p_agrees_with_the_exact_label_test(named_runs):
    """The bootstrap's label test (`bootstrap.weighted_label_test`: Mann-Whitney, normal
    approximation) on the run's own halves and labels (every image once) against the run's exact
    permutation test (``label_p``): the holds decisions agree for almost every neuron; and the
    interval of ``frac_label_holds`` is drawn from resamples that vary and covers the run's share."""
    from neurofacets import bootstrap
    from neurofacets.cof import load_labels
    from neurofacets.readers import EVALUATION_HEADLINE_COLUMNS
    from neurofacets.store import read_layer

    out = named_runs[0]
    level = load_labels(out / "images.csv", out / "classes.csv").level("class")
    column_of = {name: c for c, name in enumerate(level.names)}
    disagree = scored = 0
    for layer in LAYERS:
        table = read_evaluation(out / "evaluation" / f"{layer}.csv")
        acts = read_layer([out / "shard-000.zarr"], layer)
        codes = level.codes(acts.image_id)
        half = evaluation.split_halves(codes, evaluation.content_order(acts.content_key, acts.image_id), 0)
        direction_p = []
        for h in (0, 1):
            members = np.zeros((1, len(table), level.n_columns), dtype=bool)
            for j, cell in enumerate(table[f"top_classes_{h}"]):
                members[0, j, [column_of[name] for name in json.loads(cell)]] = True
            held_out = np.flatnonzero(half == 1 - h)
            auroc, p = bootstrap.weighted_label_test(acts.max[held_out], codes[held_out],
                                                     np.ones((1, len(held_out)), np.uint8), members)
            direction_p.append(p[0])
            exact = evaluation.HeldOutScorer(acts.max[held_out], codes[held_out], level.n_columns)
            np.testing.assert_allclose(auroc[0], exact.score(members[0])["auroc"], rtol=1e-12)
        p = bootstrap.combined_label_p(*direction_p)
        np.testing.assert_array_equal(np.isnan(p), table["label_p"].isna())
        q = np.full(len(p), np.nan)
        q[~np.isnan(p)] = evaluation.bh_q_values(p[~np.isnan(p)])
        mine = table["auroc"].notna()
        disagree += int(((q < 0.05) != table["label_holds"])[mine].sum())
        scored += int(mine.sum())
        assert bootstrap.share_label_holds(p) == pytest.approx((q[mine] < 0.05).mean())
    print(f"label holds: the normal approximation and the exact test disagree on {disagree} of {scored} neurons")
    assert scored > 100 and disagree <= 0.03 * scored
    stores = [bootstrap.bootstrap_layer([out / "shard-000.zarr"], out / "images.csv", out / "classes.csv", layer,
                                        level="class", top_k=TOP_K, seed=0, split_seed=0, resamples=30,
                                        out=out / "bootstrap-holds" / f"{layer}.zarr") for layer in LAYERS]
    draws = bootstrap.draws_table(stores, LAYERS, "global_mean", "names")
    summary = bootstrap.with_intervals(pd.read_csv(out / "evaluation" / "summary.csv"), draws,
                                       EVALUATION_HEADLINE_COLUMNS)
    for _, row in summary.iterrows():
        assert draws.loc[draws["layer"] == row["layer"], "frac_label_holds"].nunique() > 1
        assert row["frac_label_holds_ci_low"] <= row["frac_label_holds"] <= row["frac_label_holds_ci_high"]
        assert row["frac_label_holds_ci_high"] - row["frac_label_holds_ci_low"] > 0


def test_class_folder_names_change_no_null_model_number(named_runs):
    """The null model's label permutations follow the pictures (content order): the same photos
    under other folder and file names give the same permuted statistics (issue 29 item 2)."""
    from neurofacets.encode import layer_null

    first, second, _ = named_runs
    tables = []
    for out in (first, second):
        tables.append([layer_null([out / "shard-000.zarr"], out / "topk" / f"{layer}.zarr", out / "images.csv",
                                  out / "classes.csv", "class", 20, 0, out / "null" / f"{layer}.csv")
                       for layer in LAYERS])
    for a, b in zip(*tables):
        assert a["mean_mf"].iloc[1:].nunique() > 1  # the permutations differ from each other
        # the similarities sum over the classes in column order: equal to rounding (the observed row too)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=0)
        pd.testing.assert_series_equal(a["mean_mf"], b["mean_mf"], check_exact=True)
