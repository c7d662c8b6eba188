"""Top-k selection (exact tie rule) and CoF counting, against brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurofacets.cof import count_cof, cof_dataset, load_labels, read_cof, write_cof
from neurofacets.topk import read_topk, select_top_k, top_k_indices, write_topk


def brute_force_top_k(values: np.ndarray, image_id: np.ndarray, k: int) -> np.ndarray:
    """Row indices per column: full lexsort on (activation desc, image_id asc)."""
    return np.stack([np.lexsort((image_id, -values[:, c]))[:k] for c in range(values.shape[1])])


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
    write_cof(tmp_path / "cof.zarr", cof_dataset(topk, labels, {"run": "x"}))
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
