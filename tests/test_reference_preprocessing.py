"""The default preprocessing is torchvision's reference, bit for bit, on the real photos.

Reference: ``Compose([Resize(resize), CenterCrop(image_size)])`` applied to the PIL image
(converted to RGB as the project does: these photos are RGB or greyscale JPEGs, for which
that is PIL's own ``convert("RGB")``). Only an image whose whole resize would exceed
``WHOLE_RESIZE_MAX_PIXELS`` takes the box path, and the shards count it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, Resize

from neurofacets.decode import ImageDecoder
from neurofacets.images import WHOLE_RESIZE_MAX_PIXELS, needs_box_resize, preprocess, read_image_bytes


def _reference(path, image_size: int, resize: int) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(Compose([Resize(resize), CenterCrop(image_size)])(img.convert("RGB")))


def _check_all(paths, image_size: int, resize: int) -> None:
    decoder = ImageDecoder("pil", image_size, resize)  # what decode: auto resolves to
    worst, box = 0, 0
    for path in paths:
        done = decoder(path)
        ours = done.pixels.permute(1, 2, 0).numpy()
        worst = max(worst, int(np.abs(ours.astype(int) - _reference(path, image_size, resize).astype(int)).max()))
        box += done.box_resized
    assert worst == 0, f"the default path differs from torchvision's reference by {worst} levels"
    assert box == 0  # no ordinary photo comes near the bound


@pytest.mark.realdata
def test_imagenet_sample_equals_torchvision_reference_exactly():
    """All 1000 ImageNet photos (23 greyscale) at the default 224 / 256."""
    sample = shared_data("imagenet-sample")
    paths = [sample / p for p in pd.read_csv(sample / "images.csv")["path"]]
    assert len(paths) == 1000
    _check_all(paths, 224, 256)


@pytest.mark.realdata
def test_tiny_imagenet_equals_torchvision_reference_exactly():
    """All 10,100 Tiny-ImageNet validation photos (64 px) at 112 px: upscaled whole to 128, cropped."""
    root = shared_data("tiny-imagenet-val")
    paths = sorted((root / "val" / "images").glob("*.JPEG"))
    assert len(paths) == 10_100
    _check_all(paths, 112, 128)


def test_box_path_only_above_the_bound(tmp_path):
    """The box resize is taken exactly when the whole resize exceeds the bound; it stays within 1 level."""
    # 256 x (256 * 65536 / 256) = 2**24 px after the resize: the largest image resized whole
    assert not needs_box_resize(256, 65_536, 224, 256)
    assert needs_box_resize(256, 65_537, 224, 256)
    assert needs_box_resize(1, 10_000, 224, 256)  # 256 x 2,560,000 px
    rng = np.random.default_rng(0)
    for size, boxed in [((300, 200), False), ((64, 16_384), False), ((1, 70_000), True), ((70_000, 1), True)]:
        path = tmp_path / f"{size[0]}x{size[1]}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        done = preprocess(read_image_bytes(path), 32, 64)
        assert done.box_resized == boxed == needs_box_resize(*size, 32, 64), size
        if not boxed:
            np.testing.assert_array_equal(done.pixels, _reference(path, 32, 64))
        else:
            assert WHOLE_RESIZE_MAX_PIXELS < 64 * 64 * max(size)
            assert done.pixels.shape == (32, 32, 3)


def test_shards_count_and_name_the_box_resized_images(tmp_path, caplog):
    from neurofacets.config import with_defaults
    from neurofacets.datasets import list_folder, write_dataset
    from neurofacets.extract import extract_shard
    from neurofacets.store import open_shard
    from neurofacets.weights import prepare_weights

    root = tmp_path / "data"
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / c / "plain.png")
    Image.fromarray(rng.integers(0, 256, (1, 600_000, 3), dtype=np.uint8)).save(root / "b" / "line.png")
    tables = tmp_path / "dataset"
    write_dataset(list_folder(root), tables / "images.csv", tables / "classes.csv", tables / "skipped.csv",
                  images_per_class=None, shards=1)
    prepare_weights("random:0", "vgg11", tmp_path / "w.pt")
    config = {"run": "t", "model": {"arch": "vgg11", "weights": "random:0", "layers": ["conv1_1"]},
              "extraction": {"image_size": 32, "resize": 32, "batch_size": 2, "shards": 1, "device": "cpu",
                             "workers": 0}}
    with caplog.at_level("INFO", logger="neurofacets.extract"):
        extract_shard(with_defaults(config), tables / "images.csv", 0, tmp_path / "w.pt", tmp_path / "s.zarr")
    images = pd.read_csv(tables / "images.csv")
    line_id = int(images.loc[images["path"].str.endswith("line.png"), "image_id"].iloc[0])
    attrs = open_shard(tmp_path / "s.zarr").attrs
    assert attrs["n_box_resized"] == 1 and attrs["box_resized"] == [line_id]
    assert "too large to resize whole" in caplog.text and "line.png" in caplog.text
