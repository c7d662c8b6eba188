"""The synthetic probe dataset: determinism, format, files, and classes that really differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from neurofacets.probes import PROBE_CLASSES, probe_image, write_probe_dataset


def test_classes_are_a_dozen_distinct_names_in_sorted_order():
    assert len(PROBE_CLASSES) == 12
    assert len(set(PROBE_CLASSES)) == 12
    assert all(name.isidentifier() for name in PROBE_CLASSES)
    # labels = sorted class names, the order a listing of the class folders gives
    assert list(PROBE_CLASSES) == sorted(PROBE_CLASSES)


@pytest.mark.parametrize("size", [8, 33, 224])
@pytest.mark.parametrize("class_name", PROBE_CLASSES)
def test_probe_image_shape_dtype_and_not_flat(class_name, size):
    image = probe_image(class_name, np.random.default_rng(0), size)
    assert image.shape == (size, size, 3)
    assert image.dtype == np.uint8
    assert image.reshape(-1, 3).std(axis=0).max() > 2  # some visible structure


@pytest.mark.parametrize("class_name", PROBE_CLASSES)
def test_probe_image_is_deterministic_in_the_generator(class_name):
    first = probe_image(class_name, np.random.default_rng([5, 1]), 48)
    again = probe_image(class_name, np.random.default_rng([5, 1]), 48)
    other = probe_image(class_name, np.random.default_rng([5, 2]), 48)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_probe_image_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown probe class"):
        probe_image("cats", rng, 32)
    for size in (4, 32.0, True):
        with pytest.raises(ValueError, match="size"):
            probe_image("disc", rng, size)


def _mean_abs_gradients(class_name: str, n: int = 12) -> tuple[float, float]:
    dy = dx = 0.0
    for i in range(n):
        grey = probe_image(class_name, np.random.default_rng(i), 64).astype(float).mean(axis=2)
        dy += np.abs(np.diff(grey, axis=0)).mean()
        dx += np.abs(np.diff(grey, axis=1)).mean()
    return dy / n, dx / n


def test_grating_orientation_shows_in_the_gradients():
    # horizontal bars change down the image (d/dy), vertical bars across it (d/dx)
    dy, dx = _mean_abs_gradients("horizontal_grating")
    assert dy > 4 * dx
    dy, dx = _mean_abs_gradients("vertical_grating")
    assert dx > 4 * dy
    dy, dx = _mean_abs_gradients("diagonal_grating")
    assert 0.5 < dy / dx < 2


def _phase_invariant_features(image: np.ndarray) -> np.ndarray:
    """Power spectrum by frequency x orientation band, edge statistics, colour spread."""
    x = image.astype(float) / 255
    grey = x.mean(axis=2)
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean()))) ** 2
    n = grey.shape[0]
    fy, fx = np.mgrid[:n, :n] - n // 2
    radial = np.minimum((np.hypot(fy, fx) / (n / 2) * 4).astype(int), 4)
    angular = (np.mod(np.arctan2(fy, fx), np.pi) / np.pi * 4).astype(int) % 4
    total = power.sum() + 1e-12
    spectrum = [power[(radial == r) & (angular == a)].sum() / total
                for r in range(5) for a in range(4)]
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    bins = (np.mod(np.arctan2(gy, gx), np.pi) / np.pi * 8).astype(int) % 8
    orientation = np.bincount(bins.ravel(), weights=magnitude.ravel(), minlength=8)
    orientation = np.sort(orientation / (orientation.sum() + 1e-12))  # rotation-invariant
    colour = [x.std(axis=(0, 1)).mean(), (x.max(axis=2) - x.min(axis=2)).mean(), np.log(total)]
    return np.array([*spectrum, magnitude.mean(), (magnitude > 0.1).mean(), *orientation,
                     *colour])


def test_classes_are_recognisable_from_held_out_images():
    # A linear classifier on phase-invariant statistics tells the classes apart on images it
    # never saw (chance is 1/12): the classes differ in content, not only in random draws.
    per_class, train = 40, 20
    features, labels = [], []
    for label, class_name in enumerate(PROBE_CLASSES):
        for i in range(per_class):
            image = probe_image(class_name, np.random.default_rng([1, label, i]), 32)
            features.append(_phase_invariant_features(image))
            labels.append(label)
    features, labels = np.array(features), np.array(labels)
    is_train = np.tile(np.arange(per_class) < train, len(PROBE_CLASSES))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(features[is_train], labels[is_train])
    predicted = model.predict(features[~is_train])
    truth = labels[~is_train]
    assert (predicted == truth).mean() > 0.75
    recall = [(predicted[truth == c] == c).mean() for c in range(len(PROBE_CLASSES))]
    assert min(recall) >= 0.5, dict(zip(PROBE_CLASSES, recall))


def test_write_probe_dataset_files_table_and_pixels(tmp_path):
    out = tmp_path / "probes"
    table = write_probe_dataset(out, images_per_class=3, size=32, seed=7)
    assert list(table.columns) == ["path", "label", "class_name"]
    assert len(table) == 3 * len(PROBE_CLASSES)
    assert table["label"].tolist() == [lab for lab in range(12) for _ in range(3)]
    assert table["class_name"].tolist() == [PROBE_CLASSES[lab] for lab in table["label"]]
    # the files in sorted path order are the table's rows in order
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [str(out / w) for w in written] == table["path"].tolist()
    expected = sorted(f"{c}/{c}_{i:03d}.png" for c in PROBE_CLASSES for i in range(3))
    assert written == expected
    index_in_class = table.groupby("label").cumcount()
    for row, i in zip(table.itertuples(), index_in_class):
        assert row.path == str(out / row.class_name / f"{row.class_name}_{i:03d}.png")
        stored = np.asarray(Image.open(row.path).convert("RGB"))
        np.testing.assert_array_equal(
            stored, probe_image(row.class_name, np.random.default_rng([7, row.label, i]), 32)
        )
    # nothing but the dataset is left beside it (no temporary folder)
    assert [p.name for p in tmp_path.iterdir()] == ["probes"]


def test_write_probe_dataset_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_probe_dataset(tmp_path / "a", 2, 24, seed=3)
    b = write_probe_dataset(tmp_path / "b", 2, 24, seed=3)
    c = write_probe_dataset(tmp_path / "c", 2, 24, seed=4)
    for pa, pb, pc in zip(a["path"], b["path"], c["path"]):
        with open(pa, "rb") as fa, open(pb, "rb") as fb, open(pc, "rb") as fc:
            bytes_a = fa.read()
            assert bytes_a == fb.read()
            assert bytes_a != fc.read()
    # more images per class keep the first ones
    more = write_probe_dataset(tmp_path / "more", 3, 24, seed=3)
    first_two = more.groupby("label").head(2)["path"].tolist()
    for pa, pm in zip(a["path"], first_two):
        assert open(pa, "rb").read() == open(pm, "rb").read()


def test_write_probe_dataset_replaces_an_existing_folder(tmp_path):
    out = tmp_path / "probes"
    (out / "stale").mkdir(parents=True)
    (out / "stale" / "old.png").write_bytes(b"x")
    table = write_probe_dataset(out, 1, 16, seed=0)
    assert not (out / "stale").exists()
    assert isinstance(table, pd.DataFrame) and len(table) == 12


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"images_per_class": 0, "size": 32, "seed": 0}, "images_per_class"),
        ({"images_per_class": 2, "size": 4, "seed": 0}, "size"),
        ({"images_per_class": 2, "size": 32, "seed": -1}, "seed"),
        ({"images_per_class": 2.5, "size": 32, "seed": 0}, "images_per_class"),
    ],
)
def test_write_probe_dataset_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_probe_dataset(tmp_path / "probes", **kwargs)
    assert not (tmp_path / "probes").exists()


def test_default_size_dataset_is_complete(tmp_path):
    # the embedded default: 12 classes x 24 images at 224 px
    table = write_probe_dataset(tmp_path / "probes", 24, 224, seed=0)
    assert len(table) == 288
    sizes = {Image.open(p).size for p in table["path"]}
    assert sizes == {(224, 224)}
