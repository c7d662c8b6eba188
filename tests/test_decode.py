"""The torchvision and (on the CPU) nvjpeg decode paths against the PIL path: the same crops
within the stated tolerance, and exactly the same files skipped for the same reasons."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neurofacets.decode import (
    TOLERANCE_LEVELS,
    EncodedJpeg,
    DecodedFile,
    ImageDecoder,
    batch_to_device,
    plain_jpeg_size,
    resize_crop_tensor,
    resolve_decode,
)
from neurofacets.extract import collate_images, make_loader
from neurofacets.images import ImageError, resize_and_crop

CPU = torch.device("cpu")
SIZE, RESIZE = 64, 72


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-ish random picture (noise alone would be nothing like a photograph)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(height // 4, 1), max(width // 4, 1), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def _jpeg_bytes(arr: np.ndarray, mode: str = "RGB", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, "JPEG", **kw)
    return buf.getvalue()


def odd_corpus(folder: Path) -> dict[str, Path]:
    """Files of every kind the decoders meet, JPEG variants first."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = _noise(90, 120)
    good = _jpeg_bytes(arr, quality=90)
    files: dict[str, bytes | None] = {
        "baseline.jpg": good,
        "subsampling_444.jpg": _jpeg_bytes(arr, subsampling=0),
        "subsampling_422.jpg": _jpeg_bytes(arr, subsampling=1),
        "progressive.jpg": _jpeg_bytes(arr, progressive=True),
        "optimized_huffman.jpg": _jpeg_bytes(arr, optimize=True),
        "restart_markers.jpg": _jpeg_bytes(arr, restart_marker_blocks=4),
        "greyscale.jpg": _jpeg_bytes(arr, "L"),
        "cmyk.jpg": _jpeg_bytes(arr, "CMYK"),
        "quality_5.jpg": _jpeg_bytes(arr, quality=5),
        "exif_rotated.jpg": None,
        "icc_profile.jpg": None,
        "portrait.jpg": _jpeg_bytes(_noise(160, 70, 1)),
        "elongated_20_to_1.jpg": _jpeg_bytes(_noise(16, 320, 2)),
        "one_pixel.jpg": _jpeg_bytes(_noise(1, 1, 3)),
        "two_by_three.jpg": _jpeg_bytes(_noise(3, 2, 4)),
        "too_many_pixels.jpg": _jpeg_bytes(_noise(200, 200, 5)),
        "trailing_garbage.jpg": good + b"appended text after the image",
        "zero_padded.jpg": good + bytes(64),
        "truncated_half.jpg": good[: len(good) // 2],
        "no_end_marker.jpg": good[:-2],
        "corrupt_scan.jpg": good[:700] + bytes(range(200)) + good[900:],
        "header_only.jpg": good[:40],
        "png_named.jpg": None,
        "jpeg_named.png": good,
        "plain.png": None,
        "rgba.png": None,
        "palette.png": None,
        "deep_16bit.png": None,
        "line_1x10000.png": None,
        "picture.gif": None,
        "picture.bmp": None,
        "picture.tiff": None,
        "empty.jpg": b"",
        "text.jpg": b"this is not an image at all",
    }
    for name, data in files.items():
        if data is not None:
            (folder / name).write_bytes(data)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90; neither path applies it
    img.save(folder / "exif_rotated.jpg", exif=exif)
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img.save(folder / "icc_profile.jpg", icc_profile=icc)
    img.save(folder / "png_named.jpg", "PNG")
    img.save(folder / "plain.png")
    Image.fromarray(np.dstack([arr, np.full(arr.shape[:2], 128, np.uint8)])).save(folder / "rgba.png")
    img.convert("P").save(folder / "palette.png")
    Image.fromarray((arr[..., 0].astype(np.uint16) * 257)).save(folder / "deep_16bit.png")
    Image.new("RGB", (1, 10000), (9, 99, 199)).save(folder / "line_1x10000.png")
    img.save(folder / "picture.gif")
    img.save(folder / "picture.bmp")
    img.save(folder / "picture.tiff")
    (folder / "directory.jpg").mkdir(exist_ok=True)
    paths = {name: folder / name for name in files}
    paths["directory.jpg"] = folder / "directory.jpg"
    paths["missing.jpg"] = folder / "missing.jpg"
    return paths


MAX_PIXELS = 30_000  # too_many_pixels.jpg (40,000 px) is a "decompression bomb"


def _outcome(decoder: ImageDecoder, path: Path, device: torch.device = CPU) -> np.ndarray | str:
    """The crop (H, W, 3) or the skip reason, whichever path the decoder takes."""
    try:
        decoded = decoder(path)
    except ImageError as err:
        return str(err)
    out = decoded.pixels
    if isinstance(out, EncodedJpeg):
        batch = collate_images([(0, decoded, "")])
        _, x, skipped = batch_to_device(batch, device)
        if skipped:
            return skipped[0][1]
        out = x[0]
    return out.permute(1, 2, 0).cpu().numpy()


def _compare(reference: np.ndarray | str, other: np.ndarray | str, name: str) -> float:
    """Both skipped with the same reason (returns 0) or both crops within tolerance (returns
    the fraction of values that differ)."""
    if isinstance(reference, str) or isinstance(other, str):
        assert reference == other, f"{name}: PIL gives {reference!r}, the other path {other!r}"
        return 0.0
    assert reference.shape == other.shape and reference.shape[1:] == (reference.shape[0], 3), name
    diff = np.abs(reference.astype(int) - other.astype(int))
    assert diff.max() <= TOLERANCE_LEVELS, f"{name}: differs by {diff.max()} levels"
    return float(np.mean(diff > 0))


@pytest.mark.parametrize("decode", ["torchvision", "nvjpeg"])
def test_odd_corpus_same_outcome_as_pil(tmp_path, decode):
    corpus = odd_corpus(tmp_path / "odd")
    pil = ImageDecoder("pil", SIZE, RESIZE, MAX_PIXELS)
    other = ImageDecoder(decode, SIZE, RESIZE, MAX_PIXELS)
    skipped = []
    for name, path in corpus.items():
        reference = _outcome(pil, path)
        _compare(reference, _outcome(other, path), name)
        if isinstance(reference, str):
            skipped.append(name)
    # the corpus holds what it claims: these and only these are unusable (PIL and
    # torchvision decode the corrupt scan into a garbled picture, libjpeg only printing a
    # warning: every path refuses it, with libjpeg's words)
    assert sorted(skipped) == sorted([
        "too_many_pixels.jpg", "truncated_half.jpg", "no_end_marker.jpg", "header_only.jpg",
        "empty.jpg", "text.jpg", "directory.jpg", "missing.jpg", "corrupt_scan.jpg"])
    assert _outcome(pil, corpus["corrupt_scan.jpg"]).startswith("corrupt JPEG data (libjpeg: Corrupt JPEG data")


def test_plain_jpeg_size_routes_only_plain_jpegs(tmp_path):
    corpus = odd_corpus(tmp_path / "odd")
    plain = {name for name, path in corpus.items()
             if path.is_file() and plain_jpeg_size(path.read_bytes(), MAX_PIXELS) is not None}
    assert plain == {
        "baseline.jpg", "subsampling_444.jpg", "subsampling_422.jpg", "progressive.jpg",
        "optimized_huffman.jpg", "restart_markers.jpg", "greyscale.jpg", "quality_5.jpg",
        "exif_rotated.jpg", "icc_profile.jpg", "portrait.jpg", "one_pixel.jpg", "two_by_three.jpg",
        "zero_padded.jpg", "corrupt_scan.jpg", "jpeg_named.png"}


def test_loader_skips_the_same_files_with_every_decode(tmp_path):
    """Through the DataLoader (2 workers) and the device step: same ids, reasons and crops."""
    corpus = odd_corpus(tmp_path / "odd")
    paths = [str(p) for p in corpus.values()]
    runs = {}
    for decode in ("pil", "torchvision", "nvjpeg"):
        loader = make_loader(range(len(paths)), paths, SIZE, RESIZE, batch_size=5, workers=2,
                             max_pixels=MAX_PIXELS, decode=decode)
        ids, crops, skipped = [], [], []
        for batch in loader:
            batch_ids, x, bad = batch_to_device(batch, CPU)
            ids.extend(batch_ids.tolist())
            skipped.extend(bad)
            if x is not None:
                crops.append(x.numpy())
        runs[decode] = (ids, np.concatenate(crops), sorted(skipped))
    pil_ids, pil_crops, pil_skipped = runs["pil"]
    assert len(pil_skipped) >= 7 and len(pil_ids) + len(pil_skipped) == len(paths)
    for decode in ("torchvision", "nvjpeg"):
        ids, crops, skipped = runs[decode]
        assert ids == pil_ids and skipped == pil_skipped
        assert np.abs(crops.astype(int) - pil_crops.astype(int)).max() <= TOLERANCE_LEVELS


def test_real_photos_same_pixels_within_tolerance():
    """Every 5th of the 1000 ImageNet photos at the default 224/256: at most 2 levels apart,
    and on average within a few hundredths of a level."""
    from conftest import shared_data

    sample = shared_data("imagenet-sample")
    paths = sorted((sample / "images").glob("*.JPEG"))[::5]
    assert len(paths) == 200
    pil = ImageDecoder("pil", 224, 256)
    decoders = {"torchvision": ImageDecoder("torchvision", 224, 256),
                "nvjpeg": ImageDecoder("nvjpeg", 224, 256)}
    differing, mean_abs, routed_to_pil = [], [], 0
    for i, path in enumerate(paths):
        reference = _outcome(pil, path)
        tv = _outcome(decoders["torchvision"], path)
        differing.append(_compare(reference, tv, path.name))
        mean_abs.append(np.abs(reference.astype(int) - tv.astype(int)).mean())
        if i % 4 == 0:  # the device path on the CPU: the same decoder, batched
            np.testing.assert_array_equal(_outcome(decoders["nvjpeg"], path), tv)
        routed_to_pil += plain_jpeg_size(path.read_bytes()) is None
    assert np.mean(differing) < 0.05 and np.mean(mean_abs) < 0.05
    assert routed_to_pil <= 5  # nearly all real photos take the fast path


def test_resize_crop_tensor_geometry_matches_pil_path():
    rng = np.random.default_rng(3)
    for height, width in [(40, 90), (90, 40), (72, 72), (10, 30)]:
        arr = np.array(Image.fromarray(rng.integers(0, 256, (height // 2, width // 2, 3), np.uint8))
                       .resize((width, height), Image.Resampling.BICUBIC))
        ours = resize_crop_tensor(torch.from_numpy(arr).permute(2, 0, 1), SIZE, RESIZE)
        ref = np.asarray(resize_and_crop(Image.fromarray(arr), SIZE, RESIZE)).astype(int)
        assert ours.shape == (3, SIZE, SIZE) and ours.dtype == torch.uint8
        assert np.abs(ours.permute(1, 2, 0).numpy().astype(int) - ref).max() <= TOLERANCE_LEVELS
    with pytest.raises(ValueError, match="uint8"):
        resize_crop_tensor(torch.zeros(3, 8, 8), 4, 4)


def test_device_batch_keeps_order_and_falls_back_per_image(tmp_path):
    """A batch mixing worker crops, decodable JPEGs and one the decoder refuses (PIL skips it)."""
    corpus = odd_corpus(tmp_path / "odd")
    items = []
    nvjpeg = ImageDecoder("nvjpeg", SIZE, RESIZE, MAX_PIXELS)
    pil = ImageDecoder("pil", SIZE, RESIZE, MAX_PIXELS)
    names = ["plain.png", "baseline.jpg", "greyscale.jpg", "rgba.png", "progressive.jpg"]
    for image_id, name in enumerate(names):
        items.append((image_id, nvjpeg(corpus[name]), ""))
    good = corpus["baseline.jpg"].read_bytes()
    forged = DecodedFile(EncodedJpeg(torch.frombuffer(bytearray(good[:300] + good[-2:]), dtype=torch.uint8),
                                     str(corpus["truncated_half.jpg"]), SIZE, RESIZE, MAX_PIXELS), 0)
    items.insert(2, (9, forged, ""))
    batch = collate_images(items)
    assert [pos for pos, _ in batch["encoded"]] == [1, 2, 3, 5]
    ids, x, skipped = batch_to_device(batch, CPU)
    assert ids.tolist() == [0, 1, 2, 3, 4]
    assert skipped == [(9, _outcome(pil, corpus["truncated_half.jpg"]))]
    for row, name in enumerate(names):
        ref = _outcome(pil, corpus[name])
        assert np.abs(x[row].permute(1, 2, 0).numpy().astype(int) - ref.astype(int)).max() <= TOLERANCE_LEVELS


def test_resolve_decode_on_cpu():
    assert resolve_decode("auto", CPU) == "pil"  # the reference preprocessing
    assert resolve_decode("torchvision", CPU) == "torchvision"
    assert resolve_decode("pil", CPU) == "pil"
    with pytest.raises(RuntimeError, match="nvjpeg.*CUDA"):
        resolve_decode("nvjpeg", CPU)
    with pytest.raises(ValueError, match="extraction.decode"):
        resolve_decode("dali", CPU)
    with pytest.raises(ValueError, match="resolve 'auto'"):
        ImageDecoder("auto", SIZE, RESIZE)


def test_shard_records_its_decode_path(tmp_path):
    from neurofacets.config import with_defaults
    from neurofacets.datasets import list_folder, write_dataset
    from neurofacets.extract import extract_shard
    from neurofacets.store import open_shard
    from neurofacets.weights import prepare_weights

    root = tmp_path / "data"
    for i, c in enumerate("aab"):  # two classes: the dataset stage refuses a single one
        (root / c).mkdir(parents=True, exist_ok=True)
        (root / c / f"{i}.jpg").write_bytes(_jpeg_bytes(_noise(40, 50, i)))
    tables = tmp_path / "dataset"
    write_dataset(list_folder(root), tables / "images.csv", tables / "classes.csv",
                  tables / "skipped.csv", images_per_class=None, shards=1)
    prepare_weights("random:0", "vgg11", tmp_path / "w.pt")
    config = {"run": "t", "model": {"arch": "vgg11", "weights": "random:0", "layers": ["conv1_1"]},
              "extraction": {"image_size": 32, "resize": 36, "batch_size": 2, "shards": 1,
                             "device": "cpu", "precision": "fp32", "workers": 0, "decode": "auto"}}
    extract_shard(with_defaults(config), tables / "images.csv", 0, tmp_path / "w.pt", tmp_path / "s.zarr")
    attrs = open_shard(tmp_path / "s.zarr").attrs
    assert attrs["decode"] == "pil"  # auto: the reference path
    assert attrs["n_box_resized"] == 0 and attrs["box_resized"] == []
    assert set(attrs["decode_libraries"]) >= {"Pillow", "libjpeg_turbo", "simplejpeg"}
    assert len(pd.read_csv(tables / "images.csv")) == 3
