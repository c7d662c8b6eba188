"""Top-k selection (exact tie rule) and CoF counting, against brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image

from neurofacets.cof import cof_dataset, count_cof, load_labels, read_cof
from neurofacets.store import write_activation_shard, write_xarray_store
from neurofacets.topk import (
    _empty_top_k,
    merge_top_k,
    read_shard_top_k,
    read_topk,
    select_top_k,
    top_k_indices,
    write_shard_top_k,
    write_topk,
)


def brute_force_top_k(values: np.ndarray, image_id: np.ndarray, k: int) -> np.ndarray:
    """Row indices per column: full lexsort on (activation desc, image_id asc)."""
    return np.stack([np.lexsort((image_id, -values[:, c]))[:k] for c in range(values.shape[1])])


def brute_force_top_k_keyed(values: np.ndarray, image_id: np.ndarray, key: np.ndarray, k: int) -> np.ndarray:
    """Row indices per column: full lexsort on (activation desc, content key asc, image_id asc)."""
    return np.stack([np.lexsort((image_id, key, -values[:, c]))[:k] for c in range(values.shape[1])])


def tied_activations(rng: np.random.Generator, n_images: int, n_channels: int) -> np.ndarray:
    """Activations from a handful of values (many ties, zeros included), float32."""
    levels = np.array([0.0, 0.0, 0.5, 1.0, 1.5, 2.0], dtype=np.float32)
    return levels[rng.integers(0, len(levels), size=(n_images, n_channels))]


@pytest.mark.parametrize("k", [1, 3, 17, 40])
@pytest.mark.parametrize("block", [1, 5, 64])
def test_top_k_indices_equal_brute_force_with_ties(k, block):
    rng = np.random.default_rng(k * 100 + block)
    values = tied_activations(rng, 40, 13)
    expected = brute_force_top_k(values, np.arange(40), k)
    np.testing.assert_array_equal(top_k_indices(values, k, block=block), expected)


def test_top_k_indices_continuous_values():
    rng = np.random.default_rng(1)
    values = rng.random((500, 70)).astype(np.float32)
    np.testing.assert_array_equal(top_k_indices(values, 25), brute_force_top_k(values, np.arange(500), 25))


def test_all_equal_column_takes_lowest_ids_in_order():
    values = np.full((10, 2), 3.0, dtype=np.float32)
    values[7, 1] = 5.0
    idx = top_k_indices(values, 4)
    np.testing.assert_array_equal(idx[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(idx[1], [7, 0, 1, 2])


def test_top_k_indices_rejects_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        top_k_indices(np.zeros((5, 2), np.float32), 6)
    with pytest.raises(ValueError, match="k must be"):
        top_k_indices(np.zeros((5, 2), np.float32), 0)
    bad = np.zeros((5, 2), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        top_k_indices(bad, 2)
    with pytest.raises(ValueError, match="2-d"):
        top_k_indices(np.zeros(5, np.float32), 2)


def _layer(rng, n_images=60, n_channels=9, ids=None):
    values = tied_activations(rng, n_images, n_channels)
    values[:, 0] = 0.0  # a dead neuron
    argmax = rng.integers(0, 16, size=values.shape).astype(np.int32)
    image_id = np.arange(n_images, dtype=np.int64) if ids is None else ids
    return image_id, values, argmax


def test_select_top_k_gathers_ids_values_argmax_and_counts():
    rng = np.random.default_rng(2)
    # Non-contiguous ids: ties must follow the ids, which here are not the row numbers + 0.
    ids = np.sort(rng.choice(1000, size=60, replace=False)).astype(np.int64)
    image_id, values, argmax = _layer(rng, ids=ids)
    topk = select_top_k("conv1_1", image_id, values, argmax, top_k=12, height=4, width=4)
    rows = brute_force_top_k(values, image_id, 12)
    channel = np.arange(values.shape[1])[:, None]
    np.testing.assert_array_equal(topk.image_id, image_id[rows])
    np.testing.assert_array_equal(topk.value, values[rows, channel])
    np.testing.assert_array_equal(topk.argmax, argmax[rows, channel])
    np.testing.assert_array_equal(topk.n_counted, (values[rows, channel] > 0).sum(axis=1))
    assert topk.n_counted[0] == 0  # dead neuron
    assert topk.k == 12 and topk.n_images == 60
    assert topk.value.dtype == np.float32 and topk.argmax.dtype == np.int32 and topk.image_id.dtype == np.int64


def test_select_top_k_caps_k_at_number_of_images():
    rng = np.random.default_rng(3)
    image_id, values, argmax = _layer(rng, n_images=7)
    topk = select_top_k("conv1_1", image_id, values, argmax, top_k=100, height=4, width=4)
    assert topk.k == 7
    # With k = all images, every image appears once per neuron.
    np.testing.assert_array_equal(np.sort(topk.image_id, axis=1), np.tile(image_id, (values.shape[1], 1)))


def test_select_top_k_rejects_unsorted_ids():
    rng = np.random.default_rng(4)
    image_id, values, argmax = _layer(rng)
    image_id = image_id[::-1].copy()
    with pytest.raises(ValueError, match="strictly increasing"):
        select_top_k("conv1_1", image_id, values, argmax, 5, 4, 4)


def test_topk_store_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    image_id, values, argmax = _layer(rng)
    topk = select_top_k("conv2_2", image_id, values, argmax, top_k=10, height=4, width=4)
    write_topk(tmp_path / "t.zarr", topk, top_k=10, attrs={"run": "x"})
    back = read_topk(tmp_path / "t.zarr")
    for name in ("image_id", "value", "argmax", "n_counted"):
        np.testing.assert_array_equal(getattr(back, name), getattr(topk, name))
    assert (back.layer, back.height, back.width, back.n_images) == ("conv2_2", 4, 4, 60)
    assert not list(tmp_path.glob(".*tmp*"))


def _tables(tmp_path, n_images, n_classes, coarse=False):
    rng = np.random.default_rng(6)
    label = rng.integers(0, n_classes, size=n_images)
    label[:n_classes] = np.arange(n_classes)
    classes = pd.DataFrame(
        {"label": np.arange(n_classes), "class_id": [f"n{c:03d}" for c in range(n_classes)],
         "class_name": [f"class {c}" for c in range(n_classes)]}
    )
    images = pd.DataFrame({"image_id": np.arange(n_images), "path": "x.jpg", "label": label,
                           "class_name": classes["class_name"].to_numpy()[label], "shard": 0})
    if coarse:
        classes["coarse"] = np.where(classes["label"] % 3 == 0, "round", "square")
        images["coarse"] = classes["coarse"].to_numpy()[label]
    images.to_csv(tmp_path / "images.csv", index=False)
    classes.to_csv(tmp_path / "classes.csv", index=False)
    return label, load_labels(tmp_path / "images.csv", tmp_path / "classes.csv")


def test_cof_counts_equal_a_loop_and_rows_sum_to_n_counted(tmp_path):
    rng = np.random.default_rng(7)
    image_id, values, argmax = _layer(rng, n_images=60, n_channels=9)
    label, labels = _tables(tmp_path, 60, 8, coarse=True)
    topk = select_top_k("conv1_1", image_id, values, argmax, top_k=15, height=4, width=4)
    cof = count_cof(topk, labels.level("class"))
    expected = np.zeros((9, 8), dtype=np.int64)
    for n in range(9):
        for img, v in zip(topk.image_id[n], topk.value[n]):
            if v > 0:
                expected[n, label[img]] += 1
    np.testing.assert_array_equal(cof, expected)
    np.testing.assert_array_equal(cof.sum(axis=1), topk.n_counted)
    assert not cof[0].any()  # dead neuron: all-zero row
    coarse = count_cof(topk, labels.level("coarse"))
    np.testing.assert_array_equal(coarse[:, 0], expected[:, ::3].sum(axis=1))  # "round": labels 0, 3, 6
    np.testing.assert_array_equal(coarse.sum(axis=1), topk.n_counted)


def test_cof_store_levels(tmp_path):
    rng = np.random.default_rng(8)
    image_id, values, argmax = _layer(rng, n_images=60, n_channels=5)
    _, labels = _tables(tmp_path, 60, 8, coarse=True)
    topk = select_top_k("conv1_1", image_id, values, argmax, top_k=15, height=4, width=4)
    write_xarray_store(tmp_path / "cof.zarr", cof_dataset(topk, labels, {"run": "x"}))
    fine = read_cof(tmp_path / "cof.zarr", "class")
    assert fine.dims == ("neuron", "class_name")
    assert list(fine["class_name"].values) == [f"class {c}" for c in range(8)]
    np.testing.assert_array_equal(fine.values, count_cof(topk, labels.level("class")))
    coarse = read_cof(tmp_path / "cof.zarr", "coarse")
    assert coarse.dims == ("neuron", "coarse") and list(coarse["coarse"].values) == ["round", "square"]
    assert fine.attrs["layer"] == "conv1_1" and fine.attrs["run"] == "x"


def test_coarse_level_missing_is_a_clear_error(tmp_path):
    _, labels = _tables(tmp_path, 20, 4, coarse=False)
    with pytest.raises(ValueError, match="coarse"):
        labels.level("coarse")


def test_permuted_labels_keep_class_sizes(tmp_path):
    label, labels = _tables(tmp_path, 60, 8)
    level = labels.level("class")
    shuffled = level.permuted(np.random.default_rng(0))
    assert np.array_equal(np.bincount(shuffled.codes(np.arange(60))), np.bincount(label))
    assert not np.array_equal(shuffled.codes(np.arange(60)), label)


# --- per-shard candidates and their merge -------------------------------------------------


def _shard_parts(values, argmax, image_id, bounds, k):
    """Each shard's own top k (select_top_k on its rows), shards given as row ranges."""
    parts = []
    for lo, hi in bounds:
        if hi > lo:
            parts.append(select_top_k("conv1_1", image_id[lo:hi], values[lo:hi], argmax[lo:hi], k, 4, 4))
        else:
            parts.append(_empty_top_k("conv1_1", values.shape[1], 4, 4))
    return parts


@pytest.mark.parametrize("top_k", [1, 4, 9, 30])
def test_merged_shard_candidates_equal_brute_force_with_ties_across_borders(top_k):
    rng = np.random.default_rng(top_k)
    n_images, n_channels = 57, 11
    image_id = np.sort(rng.choice(500, size=n_images, replace=False)).astype(np.int64)
    values = tied_activations(rng, n_images, n_channels)  # 6 levels: ties everywhere
    values[:, 0] = 0.0  # dead neuron: its top k are the k lowest ids of all shards
    values[:, 1] = 1.0  # one tie across every shard border
    argmax = rng.integers(0, 16, size=values.shape).astype(np.int32)
    # uneven shards, one smaller than k, one empty; listed out of id order
    bounds = [(30, 57), (0, 3), (3, 3), (3, 30)]
    parts = _shard_parts(values, argmax, image_id, bounds, top_k)
    merged = merge_top_k(parts, top_k, block=4)
    expected = select_top_k("conv1_1", image_id, values, argmax, top_k, 4, 4)
    rows = brute_force_top_k(values, image_id, min(top_k, n_images))
    np.testing.assert_array_equal(merged.image_id, image_id[rows])
    for name in ("image_id", "value", "argmax", "n_counted"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(expected, name))
    assert merged.n_images == n_images and merged.k == min(top_k, n_images)
    np.testing.assert_array_equal(merged.image_id[1], image_id[: merged.k])  # lowest ids win the tie


def test_merge_refuses_what_would_not_be_exact():
    rng = np.random.default_rng(9)
    image_id, values, argmax = _layer(rng, n_images=40, n_channels=5)
    parts = _shard_parts(values, argmax, image_id, [(0, 20), (20, 40)], 3)
    with pytest.raises(ValueError, match="fewer than top_k = 5"):
        merge_top_k(parts, 5)
    other = select_top_k("conv1_1", image_id[20:], values[20:, :4], argmax[20:, :4], 3, 4, 4)
    with pytest.raises(ValueError, match="disagree"):
        merge_top_k([parts[0], other], 3)
    with pytest.raises(ValueError, match="more than one shard"):
        merge_top_k([parts[0], parts[0]], 3)
    with pytest.raises(ValueError, match="no shard"):
        merge_top_k([], 3)


def _write_shards(tmp_path, values, argmax, image_id, bounds, shard_top_k):
    paths = []
    for s, (lo, hi) in enumerate(bounds):
        path = tmp_path / f"shard-{s:03d}.zarr"
        write_activation_shard(path, image_id[lo:hi], {"conv1_1": (values[lo:hi], argmax[lo:hi], (4, 4))})
        if shard_top_k:
            write_shard_top_k(zarr.open_group(str(path), mode="r+"), shard_top_k)
        paths.append(path)
    return paths


def test_shard_candidates_round_trip_and_encode_uses_them(tmp_path):
    from neurofacets.encode import encode_layer
    from neurofacets.job_resources import encode_topk_data_mb, encode_topk_mem_mb

    rng = np.random.default_rng(10)
    image_id, values, argmax = _layer(rng, n_images=60, n_channels=9)
    _tables(tmp_path, 60, 8)
    bounds = [(0, 25), (25, 29), (29, 60)]
    with_cand = _write_shards(tmp_path / "a", values, argmax, image_id, bounds, shard_top_k=12)
    without = _write_shards(tmp_path / "b", values, argmax, image_id, bounds, shard_top_k=0)
    part = read_shard_top_k(with_cand[1], "conv1_1")
    own = select_top_k("conv1_1", image_id[25:29], values[25:29], argmax[25:29], 12, 4, 4)
    assert part.k == 4 and part.n_images == 4  # a shard smaller than k keeps all its images
    for name in ("image_id", "value", "argmax"):
        np.testing.assert_array_equal(getattr(part, name), getattr(own, name))
    assert read_shard_top_k(without[0], "conv1_1") is None
    # the merge where candidates suffice, the whole layer where they do not: same stores
    for shards, k, out in ((with_cand, 10, "merged"), (without, 10, "read"), (with_cand, 13, "fallback")):
        encode_layer(shards, tmp_path / "images.csv", tmp_path / "classes.csv", "conv1_1", k,
                     tmp_path / out / "topk.zarr", tmp_path / out / "cof.zarr")
    merged, read = read_topk(tmp_path / "merged" / "topk.zarr"), read_topk(tmp_path / "read" / "topk.zarr")
    for name in ("image_id", "value", "argmax", "n_counted"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(read, name))
    expected = select_top_k("conv1_1", image_id, values, argmax, 13, 4, 4)
    np.testing.assert_array_equal(read_topk(tmp_path / "fallback" / "topk.zarr").image_id, expected.image_id)
    np.testing.assert_array_equal(read_cof(tmp_path / "merged" / "cof.zarr", "class").values,
                                  read_cof(tmp_path / "read" / "cof.zarr", "class").values)
    # memory: running top 10 + the largest shard's 12 (3 x 16 bytes x 9 neurons), else the layer
    assert encode_topk_data_mb(with_cand, "conv1_1", 10) == pytest.approx(3 * 16 * 9 * 22 / 1e6)
    assert encode_topk_data_mb(with_cand, "conv1_1", 13) == pytest.approx(4.5 * 4 * 60 * 9 / 1e6)
    assert encode_topk_data_mb(without, "conv1_1", 10) == pytest.approx(4.5 * 4 * 60 * 9 / 1e6)
    assert encode_topk_data_mb([tmp_path / "missing.zarr"], "conv1_1", 10) is None
    assert encode_topk_mem_mb([tmp_path / "missing.zarr"], "conv1_1", 10, default=1234) > 1234


def test_extraction_writes_candidates_for_every_layer(tmp_path):
    from neurofacets.config import with_defaults
    from neurofacets.datasets import list_folder, write_dataset
    from neurofacets.extract import extract_shard
    from neurofacets.store import read_layer
    from neurofacets.weights import prepare_weights

    root = tmp_path / "data"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            noise = np.random.default_rng(i).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
            Image.fromarray(noise).save(root / c / f"{i}.png")
    (root / "a" / "2.png").write_bytes((root / "a" / "2.png").read_bytes()[:60])  # fails to decode
    tables = tmp_path / "dataset"
    write_dataset(list_folder(root), tables / "images.csv", tables / "classes.csv",
                  tables / "skipped.csv", images_per_class=None, shards=1)
    layers = ["conv1_1", "conv2_1", "conv3_3"]
    config = {"run": "t", "model": {"arch": "vgg16", "weights": "random:0", "layers": layers},
              "extraction": {"image_size": 32, "resize": 32, "batch_size": 4, "shards": 1,
                             "device": "cpu", "precision": "fp32", "workers": 0, "shard_top_k": 3}}
    prepare_weights("random:0", "vgg16", tmp_path / "w.pt")
    shard = tmp_path / "shard-000.zarr"
    extract_shard(with_defaults(config), tables / "images.csv", 0, tmp_path / "w.pt", shard)
    for layer in layers:
        acts = read_layer([shard], layer)
        assert len(acts.image_id) <= 9  # the broken image is not among the rows
        expected = select_top_k(layer, acts.image_id, acts.max, acts.argmax, 3, acts.height, acts.width,
                                acts.content_key)
        got = read_shard_top_k(shard, layer)
        assert got.n_images == len(acts.image_id) and got.k == 3
        for name in ("image_id", "value", "argmax", "content_key"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))


@pytest.mark.parametrize("k", [1, 3, 17, 40])
def test_ties_follow_the_content_key_not_the_image_id(k):
    """The documented tie rule against a full lexsort, on activations with many ties."""
    rng = np.random.default_rng(k)
    values = tied_activations(rng, 40, 13)
    image_id = np.arange(40) * 3 + 5
    key = rng.integers(0, 2**64, size=40, dtype=np.uint64)
    key[[4, 9]] = key[2]  # identical files: the image id decides among them
    expected = brute_force_top_k_keyed(values, image_id, key, k)
    topk = select_top_k("l", image_id, values, np.zeros_like(values, np.int32), k, 1, 1, content_key=key)
    np.testing.assert_array_equal(topk.image_id, image_id[expected])
    np.testing.assert_array_equal(topk.content_key, key[expected])
    np.testing.assert_array_equal(topk.value, np.take_along_axis(values.T, expected, axis=1))
    # the merge of shards' candidates breaks ties the same way
    parts = [select_top_k("l", image_id[lo:lo + 10], values[lo:lo + 10], np.zeros((10, 13), np.int32), k, 1, 1,
                          content_key=key[lo:lo + 10]) for lo in range(0, 40, 10)]
    merged = merge_top_k(parts, k)
    np.testing.assert_array_equal(merged.image_id, topk.image_id)
    np.testing.assert_array_equal(merged.content_key, topk.content_key)


def test_relabelled_pictures_keep_their_top_k():
    """The same pictures under other ids (another class order) give every neuron the same pictures."""
    rng = np.random.default_rng(3)
    values = tied_activations(rng, 30, 7)
    key = rng.integers(0, 2**64, size=30, dtype=np.uint64)
    first = select_top_k("l", np.arange(30), values, np.zeros((30, 7), np.int32), 8, 1, 1, content_key=key)
    perm = rng.permutation(30)  # image perm[j] becomes image j
    second = select_top_k("l", np.arange(30), values[perm], np.zeros((30, 7), np.int32), 8, 1, 1,
                          content_key=key[perm])
    np.testing.assert_array_equal(second.content_key, first.content_key)
    np.testing.assert_array_equal(perm[second.image_id], first.image_id)


def test_top_k_indices_row_order_must_be_a_permutation():
    with pytest.raises(ValueError, match="permutation"):
        top_k_indices(np.zeros((4, 2), np.float32), 2, row_order=np.array([0, 0, 1, 2]))
