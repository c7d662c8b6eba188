"""The encoding stage end to end on fabricated activation shards (no Snakemake)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurofacets import encode
from neurofacets.cof import read_cof
from neurofacets.metrics import layer_metrics_table
from neurofacets.readers import parse_top_classes
from neurofacets.similarity import mean_off_diagonal, neuron_similarity
from neurofacets.store import write_activation_shard
from neurofacets.topk import read_topk

LAYERS = {"conv1_1": (6, (8, 8)), "conv2_2": (10, (4, 4))}  # channels, map size
N_IMAGES, N_CLASSES, TOP_K = 80, 8, 10  # 10 images per class
CONFIG = {"run": "test", "model": {"arch": "vgg16", "weights": "random:0"}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two shards (even / odd image ids), images.csv + classes.csv with coarse groups."""
    root = tmp_path_factory.mktemp("encode")
    rng = np.random.default_rng(0)
    label = np.arange(N_IMAGES) % N_CLASSES
    classes = pd.DataFrame(
        {
            "label": np.arange(N_CLASSES),
            "class_id": [f"n{c:02d}" for c in range(N_CLASSES)],
            "class_name": [f"class {c}" for c in range(N_CLASSES)],
            "coarse": ["animal" if c < 3 else "thing" for c in range(N_CLASSES)],
        }
    )
    images = pd.DataFrame(
        {
            "image_id": np.arange(N_IMAGES),
            "path": [f"img{i}.jpg" for i in range(N_IMAGES)],
            "label": label,
            "class_name": classes["class_name"].to_numpy()[label],
            "shard": np.arange(N_IMAGES) % 2,
            "coarse": classes["coarse"].to_numpy()[label],
        }
    )
    images.to_csv(root / "images.csv", index=False)
    classes.to_csv(root / "classes.csv", index=False)
    acts = {}
    for layer, (channels, (h, w)) in LAYERS.items():
        mx = np.round(rng.gamma(1.0, 1.0, size=(N_IMAGES, channels)), 1).astype(np.float32)  # ties
        mx[rng.random(mx.shape) < 0.3] = 0.0
        mx[:, 1] = 0.0  # a dead neuron
        # neuron 2 prefers class 3 (an SF-like neuron)
        mx[label == 3, 2] += 10.0
        am = rng.integers(0, h * w, size=mx.shape).astype(np.int32)
        acts[layer] = (mx, am, (h, w))
    shards = []
    for s in range(2):
        ids = np.arange(s, N_IMAGES, 2)
        path = root / f"shard-{s:03d}.zarr"
        write_activation_shard(path, ids, {k: (v[0][ids], v[1][ids], v[2]) for k, v in acts.items()}, {"x": 1})
        shards.append(path)
    return root, shards, acts, label


@pytest.fixture(scope="module")
def encoded(run):
    root, shards, acts, label = run
    out = root / "results"
    for layer in LAYERS:
        encode.encode_layer(
            shards, root / "images.csv", root / "classes.csv", layer, TOP_K,
            out / "topk" / f"{layer}.zarr", out / "cof" / f"{layer}.zarr", CONFIG,
        )
        encode.layer_metrics(out / "cof" / f"{layer}.zarr", layer, "class", out / "metrics" / f"{layer}.csv")
        encode.layer_similarity(out / "cof" / f"{layer}.zarr", layer, "class", out / "similarity" / f"{layer}.zarr", root / "images.csv", CONFIG)
        encode.layer_rdm(out / "cof" / f"{layer}.zarr", layer, "class", out / "rdm" / f"{layer}.zarr", root / "images.csv", CONFIG)
        encode.layer_null(shards, out / "topk" / f"{layer}.zarr", root / "images.csv", root / "classes.csv", "class", 3, 7, out / "null" / f"{layer}.csv")
    layers = list(LAYERS)
    encode.all_layer_metrics([out / "metrics" / f"{l}.csv" for l in layers], layers, "global_mean", out / "metrics" / "all_layers.csv")
    encode.similarity_summary([out / "similarity" / f"{l}.zarr" for l in layers], layers, out / "similarity" / "summary.csv")
    encode.layer_rsa([out / "rdm" / f"{l}.zarr" for l in layers], layers, out / "rsa" / "rsa.csv")
    encode.null_summary([out / "null" / f"{l}.csv" for l in layers], layers, out / "null" / "summary.csv")
    return out


def test_topk_store_matches_brute_force(run, encoded):
    _, _, acts, _ = run
    for layer, (mx, am, (h, w)) in acts.items():
        topk = read_topk(encoded / "topk" / f"{layer}.zarr")
        ids = np.arange(N_IMAGES)
        rows = np.stack([np.lexsort((ids, -mx[:, c]))[:TOP_K] for c in range(mx.shape[1])])
        np.testing.assert_array_equal(topk.image_id, rows)
        np.testing.assert_array_equal(topk.value, np.take_along_axis(mx.T, rows, axis=1))
        np.testing.assert_array_equal(topk.argmax, np.take_along_axis(am.T, rows, axis=1))
        assert (topk.height, topk.width) == (h, w)
        with xr.open_zarr(encoded / "topk" / f"{layer}.zarr", consolidated=False) as ds:
            assert ds.attrs["k"] == TOP_K and ds.attrs["config_digest"] and ds.attrs["dataset_digest"]


def test_cof_rows_sum_to_n_counted_and_levels(run, encoded):
    _, _, _, label = run
    for layer in LAYERS:
        topk = read_topk(encoded / "topk" / f"{layer}.zarr")
        fine = read_cof(encoded / "cof" / f"{layer}.zarr", "class")
        coarse = read_cof(encoded / "cof" / f"{layer}.zarr", "coarse")
        np.testing.assert_array_equal(fine.values.sum(axis=1), topk.n_counted)
        np.testing.assert_array_equal(coarse.values.sum(axis=1), topk.n_counted)
        np.testing.assert_array_equal(coarse.values[:, 0], fine.values[:, :3].sum(axis=1))
        assert not fine.values[1].any()  # dead neuron
        assert fine.values[2, 3] == TOP_K  # neuron 2's top images are all class 3
        for n in range(topk.n_neurons):
            counted = topk.image_id[n][topk.value[n] > 0]
            np.testing.assert_array_equal(fine.values[n], np.bincount(label[counted], minlength=N_CLASSES))


def test_metrics_tables(encoded):
    for layer in LAYERS:
        table = pd.read_csv(encoded / "metrics" / f"{layer}.csv", keep_default_na=False, na_values=[""])
        assert list(table.columns) == ["layer", "neuron", "n_counted", "sparsity", "flatness", "mf", "p_value", "q_value",
                                       "p_empirical", "q_empirical", "top_classes"]
        cof = read_cof(encoded / "cof" / f"{layer}.zarr", "class")
        expected = layer_metrics_table(layer, cof.values, list(cof["class_name"].values))
        pd.testing.assert_frame_equal(table.drop(columns="top_classes"), expected.drop(columns="top_classes"), check_exact=False, rtol=1e-12)
        assert table.loc[2, "top_classes"] == f'[["class 3", {TOP_K}]]'
        assert table.loc[1, "flatness"] == -1 and np.isnan(table.loc[1, "mf"])
    all_layers = pd.read_csv(encoded / "metrics" / "all_layers.csv")
    assert len(all_layers) == sum(c for c, _ in LAYERS.values())
    assert all_layers["layer"].unique().tolist() == list(LAYERS)
    dead = all_layers["mf"].isna()
    assert (all_layers.loc[dead, "facet"] == "dead").all() and dead.sum() >= 2
    live = all_layers[~dead]
    threshold = live["mf"].mean()
    assert np.allclose(live["facet_threshold"], threshold)
    assert (live["facet"] == np.where(live["mf"] > threshold, "MF", "SF")).all()
    assert live["mf_norm"].between(0, 1).all()


def test_similarity_outputs(encoded):
    summary = pd.read_csv(encoded / "similarity" / "summary.csv")
    assert summary["layer"].tolist() == list(LAYERS)
    for layer in LAYERS:
        cof = read_cof(encoded / "cof" / f"{layer}.zarr", "class").values
        sim = neuron_similarity(cof)
        with xr.open_zarr(encoded / "similarity" / f"{layer}.zarr", consolidated=False) as ds:
            assert ds.attrs["n_excluded"] == int(sim.excluded.sum()) >= 1  # the dead neuron
            np.testing.assert_array_equal(ds["excluded"].values, sim.excluded)
        row = summary.set_index("layer").loc[layer]
        assert row["n_excluded"] == sim.n_excluded
        assert row["mean_similarity"] == pytest.approx(mean_off_diagonal(sim.pearson, sim.excluded))
        assert row["mean_dissimilarity"] == pytest.approx(mean_off_diagonal(sim.euclidean, sim.excluded))


def test_rsa_outputs(encoded):
    rsa = pd.read_csv(encoded / "rsa" / "rsa.csv", index_col="layer")
    assert list(rsa.index) == list(LAYERS) and list(rsa.columns) == list(LAYERS)
    np.testing.assert_allclose(np.diag(rsa.to_numpy()), 1.0)
    np.testing.assert_allclose(rsa.to_numpy(), rsa.to_numpy().T)
    with xr.open_zarr(encoded / "rdm" / "conv1_1.zarr", consolidated=False) as ds:
        assert ds["rdm"].shape == (N_CLASSES, N_CLASSES)


def test_null_model(encoded, run):
    root, shards, *_ = run
    table = pd.read_csv(encoded / "null" / "conv1_1.csv")
    assert table["permutation"].tolist() == [-1, 0, 1, 2]
    metrics = pd.read_csv(encoded / "metrics" / "conv1_1.csv")
    observed = table.iloc[0]
    finite = np.isfinite(metrics["mf"])
    assert observed["mean_mf"] == pytest.approx(metrics.loc[finite, "mf"].mean())
    summary = pd.read_csv(encoded / "similarity" / "summary.csv").set_index("layer")
    assert observed["mean_similarity"] == pytest.approx(summary.loc["conv1_1", "mean_similarity"])
    # Same seed, same permutations; another seed, others.
    again = encode.layer_null(shards, encoded / "topk" / "conv1_1.zarr", root / "images.csv", root / "classes.csv", "class", 3, 7, root / "again.csv")
    pd.testing.assert_frame_equal(again, table)
    other = encode.layer_null(shards, encoded / "topk" / "conv1_1.zarr", root / "images.csv", root / "classes.csv", "class", 3, 8, root / "other.csv")
    assert not np.allclose(other["mean_mf"].iloc[1:], table["mean_mf"].iloc[1:])
    null_summary = pd.read_csv(encoded / "null" / "summary.csv").set_index("layer")
    row = null_summary.loc["conv1_1"]
    assert row["n_permutations"] == 3
    assert row["observed_mean_mf"] == pytest.approx(observed["mean_mf"])
    assert row["null_mean_mf"] == pytest.approx(table["mean_mf"].iloc[1:].mean())
    assert row["null_std_mean_mf"] == pytest.approx(table["mean_mf"].iloc[1:].std(ddof=1))


def test_coarse_level_and_layer_mean_threshold(run, encoded, tmp_path):
    root, *_ = run
    layers = list(LAYERS)
    paths = []
    for layer in layers:
        path = tmp_path / f"{layer}.csv"
        table = encode.layer_metrics(encoded / "cof" / f"{layer}.zarr", layer, "coarse", path)
        assert {name for cell in table["top_classes"] for name, _ in parse_top_classes(cell)} <= {"animal", "thing"}
        paths.append(path)
    table = encode.all_layer_metrics(paths, layers, "layer_mean", tmp_path / "all.csv")
    for layer in layers:
        rows = table[table["layer"] == layer]
        assert np.allclose(rows["facet_threshold"], rows["mf"][np.isfinite(rows["mf"])].mean())
    with pytest.raises(ValueError, match="expected rows of layer"):
        encode.all_layer_metrics(paths[::-1], layers, "global_mean", tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_memory_estimate(run):
    from neurofacets.job_resources import encode_topk_data_mb

    _, shards, _, _ = run  # shards without top-k candidates: the whole layer is read
    assert encode_topk_data_mb(shards, "conv2_2", TOP_K) == pytest.approx(4.5 * N_IMAGES * 10 * 4 / 1e6)
    assert encode_topk_data_mb([shards[0], "missing.zarr"], "conv2_2", TOP_K) is None


def test_unknown_image_ids_are_refused(run, tmp_path):
    root, shards, _, _ = run
    images = pd.read_csv(root / "images.csv")
    images[images["image_id"] < 40].to_csv(tmp_path / "images.csv", index=False)
    with pytest.raises(ValueError, match="not in"):
        encode.encode_layer(shards, tmp_path / "images.csv", root / "classes.csv", "conv1_1", 5, tmp_path / "t.zarr", tmp_path / "c.zarr")
    assert not (tmp_path / "t.zarr").exists()
