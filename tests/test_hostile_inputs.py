"""A generated corpus of odd and bad inputs, each with the outcome it must have.

Part 1: files and folder entries of every odd kind, in a class-folder dataset, run through
the dataset stage and one small extraction (random VGG16 weights, conv1_1, 32 px). Each
entry must end up *converted* (a row in images.csv and in the activation shard), *skipped
by the dataset stage* (dataset/skipped.csv, with this reason) or *skipped by extraction*
(activations/skipped.csv, with this reason); hidden files are not listed.

Part 2: CSV label tables: each stops the run with this text, or is accepted as stated.
Part 3: a duplicated CSV row leaves the CoF exactly as without it; class names that break
naive text formats (``a;b``, ``a:b``, ``<script>``, unicode, ``NA``, ``$``) survive images.csv,
the CoF store, the metrics tables, Tables 2-3, the neuron picture and the gallery page.

docs/dataset.md lists the same cases (``What happens to odd input``).
Checkpoints that would run code: tests/test_weights.py; damaged stores: tests/test_store.py;
config overrides: tests/test_config.py.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from fakerun import make_fake_run
from PIL import Image

from neurofacets import encode, gallery
from neurofacets.cof import read_cof
from neurofacets.config import with_defaults
from neurofacets.datasets import DatasetError, dataset_from_config
from neurofacets.extract import extract_shard
from neurofacets.store import write_skipped_table
from neurofacets.figures import write_tables
from neurofacets.neuron_figure import neuron_figure, read_metrics_row
from neurofacets.readers import parse_top_classes
from neurofacets.weights import prepare_weights

MAX_PIXELS = 4_000_000  # extraction.max_image_pixels of the corpus run
IMAGE_SIZE = 32
CONFIG = with_defaults({
    "run": "hostile",
    "model": {"arch": "vgg16", "weights": "random:0", "layers": ["conv1_1"]},
    "extraction": {"image_size": IMAGE_SIZE, "resize": IMAGE_SIZE, "batch_size": 8, "shards": 1,
                   "device": "cpu", "precision": "fp32", "workers": 0, "max_image_pixels": MAX_PIXELS},
    "analysis": {"top_k": 6},
})

# ------------------------------------------------------------------------------ file makers

_rng = np.random.default_rng(0)


def _pixels(width: int = 40, height: int = 30) -> np.ndarray:
    return _rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(mode: str = "RGB", size: tuple[int, int] = (40, 30), **kwargs) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        img = Image.fromarray(_pixels(*size))
        if mode == "RGBA":
            alpha = np.full(size[::-1], 255, np.uint8)
            alpha[: size[1] // 2] = 0  # half the image transparent
            img = Image.fromarray(np.dstack([np.asarray(img), alpha]), "RGBA")
        elif mode == "P+transparency":
            img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
            kwargs["transparency"] = 0
        elif mode == "I;16":
            img = Image.fromarray(_rng.integers(0, 65536, size[::-1]).astype(np.uint16))
        elif mode == "F":
            img = Image.fromarray(_rng.random(size[::-1]).astype(np.float32) * 1000, "F")
        elif mode != "RGB":
            img = img.convert(mode)
        img.save(path, **kwargs)
    return make


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data() if callable(data) else data)


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pixels()).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pixels()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _jpeg_scan_overwritten() -> bytes:
    """A JPEG with 200 bytes of its compressed scan overwritten, length kept: libjpeg decodes it
    into a garbled picture and only prints "Corrupt JPEG data" on the console."""
    buffer = io.BytesIO()
    Image.fromarray(_pixels(200, 150)).save(buffer, format="JPEG", quality=95)
    data = bytearray(buffer.getvalue())
    start = data.index(b"\xff\xda") + 40  # inside the scan that follows the start-of-scan header
    data[start:start + 200] = np.random.default_rng(5).integers(0, 255, 200, dtype=np.uint8).tobytes()  # no 0xff
    return bytes(data)


def _float_tiff(values: np.ndarray) -> Callable[[Path], None]:
    return lambda path: Image.fromarray(values.astype(np.float32), "F").save(path, format="TIFF")


def _unit_float() -> np.ndarray:
    return _rng.random((30, 40)).astype(np.float32)


def _with_inf() -> np.ndarray:
    values = _unit_float() * 255
    values[3, 4] = np.inf
    return values


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A 60-byte PNG whose header claims width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + _png_chunk(b"IEND", b""))


def _flip_idat_byte() -> bytes:
    data = bytearray(_png_bytes())
    data[data.index(b"IDAT") + 20] ^= 0xFF
    return bytes(data)


def _without_idat() -> bytes:
    data = _png_bytes()
    return data[:data.index(b"IDAT") - 4] + data[data.index(b"IEND") - 4:]


def _animated_gif(path: Path) -> None:
    frames = [Image.fromarray(_pixels()) for _ in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def _exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    Image.fromarray(_pixels()).save(path, exif=exif)


def _symlink(target: str) -> Callable[[Path], None]:
    return lambda path: os.symlink(target, path)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


# ------------------------------------------------------------------------------ the corpus


@dataclass(frozen=True)
class Case:
    """One kind of input: where it lies under the root, how it is made, what must happen."""

    kind: str
    name: str  # path under the dataset root (class folder / file); os.fsdecode of the bytes
    make: Callable[[Path], None]
    outcome: str  # "converted" | "dataset" (skipped there) | "extraction" (skipped there) | "ignored"
    reason: str = ""  # what the skip reason must contain


NOT_UTF8 = os.fsdecode(b"\xff\xfe.png")  # the bytes 0xff 0xfe in a file name
NOT_UTF8_CLASS = os.fsdecode(b"cl\xe9s")  # a Latin-1 folder name
HOSTILE_CLASS_FOLDERS = ["a;b", "a:b", "café ☕ 日本", "NA", "$5 bill", "<b onmouseover=x>"]

CASES = [
    # converted
    Case("RGB PNG", "odd/rgb.png", _save(), "converted"),
    Case("greyscale JPEG", "odd/grey.jpg", _save("L"), "converted"),
    Case("CMYK JPEG", "odd/cmyk.jpg", _save("CMYK"), "converted"),
    Case("RGBA PNG, half transparent", "odd/rgba.png", _save("RGBA"), "converted"),
    Case("greyscale + alpha PNG", "odd/la.png", _save("LA"), "converted"),
    Case("palette PNG", "odd/palette.png", _save("P"), "converted"),
    Case("palette PNG with a transparent colour", "odd/palette_t.png", _save("P+transparency"), "converted"),
    Case("16-bit greyscale PNG", "odd/deep16.png", _save("I;16"), "converted"),
    Case("1-bit BMP", "odd/bilevel.bmp", _save("1"), "converted"),
    Case("32-bit float TIFF", "odd/float.tif", _save("F"), "converted"),
    Case("1 x 1 px image", "odd/one_pixel.png", _save(size=(1, 1)), "converted"),
    Case("1 x 10000 px PNG", "odd/tall.png", _save(size=(1, 10000)), "converted"),
    Case("10000 x 1 px PNG", "odd/wide.png", _save(size=(10000, 1)), "converted"),
    Case("animated GIF (first frame)", "odd/animated.gif", _animated_gif, "converted"),
    Case("lossless WebP", "odd/lossless.webp", _save(lossless=True), "converted"),
    Case("JPEG with EXIF rotation (not applied)", "odd/exif.jpg", _exif_rotated, "converted"),
    Case("upper-case extension", "odd/UPPER.JPEG", _save(), "converted"),
    Case("PNG content under a .jpg name", "odd/png_inside.jpg", _bytes(_png_bytes), "converted"),
    Case("unicode file name", "odd/名前 é ☕.png", _save(), "converted"),
    Case("file name with , \" and spaces", 'odd/a, "b" c.png', _save(), "converted"),
    Case("file name with a newline", "odd/line\nbreak.png", _save(), "converted"),
    Case("image in a nested sub-folder", "odd/sub/deeper/deep.png", _save(), "converted"),
    Case("symbolic link to an image", "odd/link.png", _symlink("rgb.png"), "converted"),
    *[Case(f"class folder named {name!r}", f"{name}/img.png", _save(), "converted")
      for name in HOSTILE_CLASS_FOLDERS],
    # skipped by the dataset stage (from the name, the kind of entry or the header)
    Case("empty file", "odd/empty.png", _bytes(b""), "dataset", "empty file"),
    Case("random bytes named .jpg", "odd/noise.jpg", _bytes(lambda: _rng.bytes(500)), "dataset",
         "not an image (format not recognised)"),
    Case("text file", "odd/notes.txt", _bytes(b"hello"), "dataset", "not an image file extension (.txt)"),
    Case("file without extension", "odd/README", _bytes(b"hello"), "dataset",
         "not an image file extension (none)"),
    Case("SVG drawing", "odd/drawing.svg", _bytes(b"<svg/>"), "dataset", "not an image file extension (.svg)"),
    Case("decompression bomb by pixel count", "odd/bomb.png", _save(size=(2500, 2000)), "dataset",
         f"decompression bomb: 2500x2000 px exceeds {MAX_PIXELS} pixels"),
    Case("60-byte PNG claiming 10^10 px", "odd/claims_huge.png", _bytes(_png_claiming(100_000, 100_000)),
         "dataset", "decompression bomb"),
    Case("dangling symbolic link", "odd/dangling.png", _symlink("gone.png"), "dataset",
         "broken symbolic link (to gone.png, which does not exist)"),
    Case("symbolic link loop", "odd/loop.png", _symlink("loop.png"), "dataset", "symbolic link loop"),
    Case("symbolic link to a folder", "odd/linked_folder", _symlink("sub"), "dataset",
         "symbolic link to a folder (not followed)"),
    Case("named pipe (fifo) called .jpg", "odd/pipe.jpg", _fifo, "dataset",
         "not a regular file (a fifo, socket or device)"),
    Case("file name with bytes that are not UTF-8", f"odd/{NOT_UTF8}", _save(), "dataset",
         "file name is not valid UTF-8 (rename it)"),
    Case("class folder name that is not UTF-8", f"{NOT_UTF8_CLASS}/img.png", _save(), "dataset",
         "file name is not valid UTF-8 (rename it)"),
    # header fine, decoding fails: skipped by extraction
    Case("truncated JPEG", "odd/truncated.jpg", _bytes(lambda: _jpeg_bytes()[:700]), "extraction",
         "unreadable image: image file is truncated"),
    Case("truncated PNG", "odd/truncated.png", _bytes(lambda: _png_bytes()[:1500]), "extraction",
         "unreadable image: image file is truncated"),
    Case("PNG with a damaged data stream", "odd/damaged.png", _bytes(_flip_idat_byte), "extraction",
         "unreadable image"),
    Case("PNG header without image data", "odd/no_data.png", _bytes(_without_idat), "extraction",
         "unreadable image"),
    Case("JPEG with 200 bytes of its scan overwritten (length kept)", "odd/corrupt_scan.jpg",
         _bytes(_jpeg_scan_overwritten), "extraction", "corrupt JPEG data (libjpeg: Corrupt JPEG data"),
    Case("float TIFF with values in 0..1", "odd/float_unit.tif", lambda p: _float_tiff(_unit_float())(p),
         "converted"),
    Case("float TIFF with an infinite pixel", "odd/float_inf.tif", lambda p: _float_tiff(_with_inf())(p),
         "extraction", "float image with 1 non-finite pixel value(s) (NaN or infinite)"),
    Case("float TIFF with negative values", "odd/float_negative.tif",
         lambda p: _float_tiff(_unit_float() - 0.5)(p), "extraction", "outside the ranges read"),
    # not listed at all
    Case("hidden file", "odd/.hidden.png", _save(), "ignored"),
]


def test_the_corpus_has_at_least_30_kinds():
    assert len({case.kind for case in CASES}) == len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


def _dataset_and_extraction(tmp: Path, root: Path) -> tuple[dict, Path, Path]:
    """The class folders under ``root`` through the dataset stage and one extraction (CONFIG):
    the config, the results folder and the shard."""
    out = tmp / "results"
    config = with_defaults({**CONFIG, "dataset": {"format": "folder", "root": str(root), "images_per_class": None,
                                                  "coarse_labels": None}})
    dataset_from_config(config, None, out / "images.csv", out / "classes.csv", out / "skipped.csv")
    prepare_weights("random:0", "vgg16", tmp / "weights.pt")
    shard = out / "shard-000.zarr"
    extract_shard(config, out / "images.csv", 0, tmp / "weights.pt", shard)
    return config, out, shard


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """The corpus as a class-folder dataset, through the dataset stage and one extraction."""
    tmp = tmp_path_factory.mktemp("hostile")
    root = tmp / "root"
    for case in CASES:
        path = root / case.name
        path.parent.mkdir(parents=True, exist_ok=True)
        case.make(path)
    config, out, shard = _dataset_and_extraction(tmp, root)
    write_skipped_table([shard], out / "activations_skipped.csv")
    read = {"keep_default_na": False, "encoding": "utf-8"}
    return {
        "root": root,
        "images": pd.read_csv(out / "images.csv", **read),
        "classes": pd.read_csv(out / "classes.csv", **read),
        "skipped": pd.read_csv(out / "skipped.csv", **read),
        "extraction_skipped": pd.read_csv(out / "activations_skipped.csv", **read),
        "shard_ids": zarr.open_group(str(shard), mode="r")["image_id"][:],
    }


def _shown(path: str) -> str:
    """How the tables write a path: undecodable bytes as \\xff."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_corpus_case_outcome(corpus_run, case):
    path = _shown(str(corpus_run["root"] / case.name))
    images, skipped, late = corpus_run["images"], corpus_run["skipped"], corpus_run["extraction_skipped"]
    listed = images.loc[images["path"] == path, "image_id"].tolist()
    skipped_reason = skipped.loc[skipped["path"] == path, "reason"].tolist()
    late_reason = late.loc[late["path"] == path, "reason"].tolist()
    if case.outcome == "ignored":
        assert not listed and not skipped_reason and not late_reason
    elif case.outcome == "dataset":
        assert not listed and len(skipped_reason) == 1 and case.reason in skipped_reason[0]
    else:
        assert len(listed) == 1 and not skipped_reason, (listed, skipped_reason)
        in_shard = listed[0] in set(corpus_run["shard_ids"].tolist())
        if case.outcome == "converted":
            assert in_shard and not late_reason
        else:
            assert not in_shard and len(late_reason) == 1 and case.reason in late_reason[0]


def test_every_entry_is_accounted_for(corpus_run):
    """Nothing vanishes: every non-hidden entry is an image or a skip, and the tables are UTF-8."""
    images, skipped = corpus_run["images"], corpus_run["skipped"]
    expected = {_shown(str(corpus_run["root"] / c.name)) for c in CASES if c.outcome != "ignored"}
    assert set(images["path"]) | set(skipped["path"]) == expected
    assert len(images) + len(skipped) == len(expected)


def test_hostile_class_folder_names_survive_the_tables(corpus_run):
    classes = corpus_run["classes"]
    assert set(HOSTILE_CLASS_FOLDERS) <= set(classes["class_name"])
    assert NOT_UTF8_CLASS not in set(classes["class_name"])  # all its files were skipped


# ------------------------------------------------------------------------------ CSV label tables


def _csv_root(tmp_path: Path, n: int = 4) -> Path:
    root = tmp_path / "root"
    (root / "img").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(_pixels(16, 16)).save(root / "img" / f"{i}.png")
    return root


def _csv_dataset(tmp_path: Path, root: Path, text: str | bytes, allow_outside_root: bool = False,
                 name: str = "labels.csv") -> pd.DataFrame:
    labels = root / name
    labels.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    config = with_defaults({**CONFIG, "dataset": {"format": "csv", "root": str(root), "labels": name,
                                                  "images_per_class": None, "coarse_labels": None,
                                                  "allow_outside_root": allow_outside_root}})
    out = tmp_path / "out"
    dataset_from_config(config, None, out / "images.csv", out / "classes.csv", out / "skipped.csv")
    return out


CSV_ERRORS = [
    ("same file listed with two labels", "path,label\nimg/0.png,0\nimg/1.png,1\nimg/0.png,1\n",
     "lists 'img/0.png' with different labels on lines 2, 4 ('0', '1')"),
    ("same file under two spellings with two labels", "path,label\nimg/0.png,0\n./img/0.png,1\nimg/1.png,1\n",
     "with different labels on lines 2, 3"),
    ("label written 0 and 0.0", "path,label\nimg/0.png,0\nimg/1.png,0.0\nimg/2.png,1\n",
     "writes one label in 2 ways ['0', '0.0'] on lines 2, 3"),
    ("label written 1 and ' 1'", "path,label\nimg/0.png,1\nimg/1.png, 1\nimg/2.png,2\n",
     "writes one label in 2 ways ['1', ' 1'] on lines 2, 3"),
    ("empty label", "path,label\nimg/0.png,0\nimg/1.png,\nimg/2.png,1\n", "has an empty label on line 3"),
    ("blank label", "path,label\nimg/0.png,0\nimg/1.png,  \n", "has an empty label on line 3"),
    ("empty path", "path,label\n,0\nimg/1.png,1\n", "has an empty path on line 2"),
    ("empty class name", "path,label,class_name\nimg/0.png,0,cat\nimg/1.png,1,\n",
     "has an empty class_name on line 3"),
    ("one label, two class names", "path,label,class_name\nimg/0.png,0,cat\nimg/1.png,0,dog\nimg/2.png,1,x\n",
     "gives label '0' the class names ['cat', 'dog'] on lines 2, 3"),
    ("path leaving root through ..", "path,label\nimg/0.png,0\n../outside.png,1\n",
     "names 1 path(s) outside dataset.root"),
    ("absolute path outside root", "path,label\nimg/0.png,0\n/etc/passwd,1\n",
     "on line 3, e.g. '/etc/passwd'; set dataset.allow_outside_root: true"),
    ("file that does not exist", "path,label\nimg/0.png,0\nimg/9.png,1\n", "1 file(s) listed in"),
    ("CSV that is not UTF-8", b"path,label\nimg/0.png,caf\xe9\nimg/1.png,1\n", "is not UTF-8 text"),
    ("ragged CSV", "path,label\nimg/0.png,0\nimg/1.png,1,extra,fields\n", "is not a readable CSV"),
    ("CSV without a label column", "path,class\nimg/0.png,0\n", "lacks column(s) ['label']"),
    ("CSV with a header only", "path,label\n", "lists no images"),
]


@pytest.mark.parametrize("text,message", [c[1:] for c in CSV_ERRORS], ids=[c[0] for c in CSV_ERRORS])
def test_csv_label_table_errors_name_the_rows(tmp_path, text, message):
    root = _csv_root(tmp_path)
    (root.parent / "outside.png").write_bytes(_png_bytes())
    with pytest.raises(DatasetError) as info:
        _csv_dataset(tmp_path, root, text)
    assert message in str(info.value)
    assert not (tmp_path / "out" / "images.csv").exists()


def test_csv_accepted_oddities(tmp_path):
    """A BOM, labels like NA, an exact duplicate (dropped, recorded), a dangling link (skipped)."""
    root = _csv_root(tmp_path)
    os.symlink("gone.png", root / "img" / "dangling.png")
    text = ("\ufeffpath,label,class_name\nimg/0.png,NA,null\nimg/1.png,7,<script>alert(1)</script>\n"
            "img/1.png,7,<script>alert(1)</script>\nimg/2.png,NA,null\nimg/dangling.png,7,<script>alert(1)</script>\n")
    out = _csv_dataset(tmp_path, root, text)
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    classes = pd.read_csv(out / "classes.csv", keep_default_na=False, dtype=str)
    skipped = pd.read_csv(out / "skipped.csv", keep_default_na=False)
    assert images["path"].tolist() == [str(root / "img" / f"{i}.png") for i in (1, 0, 2)]  # "7" < "NA"
    assert classes[["class_id", "class_name"]].values.tolist() == [["7", "<script>alert(1)</script>"], ["NA", "null"]]
    assert skipped["reason"].tolist() == ["listed again: same file and label as line 3 of labels.csv",
                                          "broken symbolic link (to gone.png, which does not exist)"]


def test_path_outside_root_is_accepted_when_allowed(tmp_path):
    root = _csv_root(tmp_path)
    (root.parent / "outside.png").write_bytes(_png_bytes())
    # two images per class: a dataset of one image per class is refused (its halves cannot both hold images)
    text = "path,label\nimg/0.png,0\nimg/1.png,0\nimg/2.png,1\n../outside.png,1\n"
    out = _csv_dataset(tmp_path, root, text, allow_outside_root=True)
    assert pd.read_csv(out / "images.csv")["path"].tolist() == [
        str(root / "img/0.png"), str(root / "img/1.png"), str(root / "../outside.png"), str(root / "img/2.png")]


def test_no_usable_images_lists_the_files_and_reasons_first(tmp_path):
    root = tmp_path / "root"
    (root / "c").mkdir(parents=True)
    (root / "c" / "empty.png").write_bytes(b"")
    (root / "c" / "notes.txt").write_text("x")
    config = with_defaults({**CONFIG, "dataset": {"format": "folder", "root": str(root), "images_per_class": None}})
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as info:
        dataset_from_config(config, None, out / "images.csv", out / "classes.csv", out / "skipped.csv")
    assert str(info.value) == (
        "the dataset has no usable images: all 2 listed files were skipped (every one with its reason "
        "in the log and in skipped.csv, which Snakemake removes when the job fails): "
        f"{root}/c/empty.png: empty file; {root}/c/notes.txt: not an image file extension (.txt)"
    )
    assert pd.read_csv(out / "skipped.csv")["reason"].tolist() == ["empty file", "not an image file extension (.txt)"]
    assert not (out / "images.csv").exists()


# ------------------------------------------------------------------------------ CoF and class names

NAMES = ["a;b", "a:b", "<script>alert(1)</script>", "café ☕ 日本", "NA", "$x^$ TeX", 'say "hi", 1:2;3']


def _small_run(tmp_path: Path, root: Path, text: str, tag: str) -> tuple[Path, xr.DataArray]:
    """Dataset stage, extraction and top-k/CoF of conv1_1 (k = 5) for one label CSV."""
    out = _csv_dataset(tmp_path / tag, root, text, name=f"{tag}.csv")
    prepare_weights("random:0", "vgg16", out / "weights.pt")
    extract_shard(CONFIG, out / "images.csv", 0, out / "weights.pt", out / "shard-000.zarr")
    encode.encode_layer([out / "shard-000.zarr"], out / "images.csv", out / "classes.csv", "conv1_1", 5,
                        out / "topk.zarr", out / "cof.zarr")
    return out, read_cof(out / "cof.zarr", "class")


def test_duplicated_csv_row_leaves_the_cof_unchanged_and_names_survive(tmp_path):
    root = _csv_root(tmp_path, n=len(NAMES) * 2)
    table = pd.DataFrame({"path": [f"img/{i}.png" for i in range(len(NAMES) * 2)],
                          "label": np.arange(len(NAMES) * 2) // 2, "class_name": np.repeat(NAMES, 2)})
    clean = table.to_csv(index=False)
    duplicated = pd.concat([table, table.iloc[[3]]]).to_csv(index=False)  # image 3 listed twice
    out_clean, cof_clean = _small_run(tmp_path, root, clean, "clean")
    out_dup, cof_dup = _small_run(tmp_path, root, duplicated, "dup")
    np.testing.assert_array_equal(cof_dup.values, cof_clean.values)
    assert cof_dup.values.sum() > 0
    pd.testing.assert_frame_equal(pd.read_csv(out_dup / "images.csv"), pd.read_csv(out_clean / "images.csv"))
    assert pd.read_csv(out_dup / "skipped.csv")["reason"].tolist() == [
        "listed again: same file and label as line 5 of dup.csv"]
    # the names, exactly, in the CoF store and in the metrics table's top classes
    assert list(cof_clean["class_name"].values) == NAMES
    table = encode.layer_metrics(out_clean / "cof.zarr", "conv1_1", "class", out_clean / "metrics.csv")
    back = pd.read_csv(out_clean / "metrics.csv")
    cells = [parse_top_classes(cell) for cell in back["top_classes"]]
    assert cells == [parse_top_classes(cell) for cell in table["top_classes"]]
    for row, pairs in zip(cof_clean.values, cells):  # counts >= the 5th largest (ties all in), equal counts by name
        fifth = sorted(row, reverse=True)[min(4, len(row) - 1)]
        order = sorted((c for c in range(len(NAMES)) if row[c] > 0 and row[c] >= fifth),
                       key=lambda c: (-row[c], NAMES[c], c))
        assert pairs == [(NAMES[c], int(row[c])) for c in order]


@pytest.fixture(scope="module")
def hostile_names_run(tmp_path_factory):
    """A fabricated run whose classes carry the hostile names, with tables and gallery built."""
    fake = make_fake_run(tmp_path_factory.mktemp("names"), n_classes=len(NAMES), class_names=NAMES)
    out, layer = fake.out, fake.layers[0]
    write_tables(out / "metrics" / "all_layers.csv", out / "model" / "layers.csv",
                 out / "tables" / "sf.csv", out / "tables" / "mf.csv")
    gallery.build_layer_gallery(
        layer, out / "metrics" / "all_layers.csv", out / "model" / "layers.csv", out / "ica" / f"{layer}.zarr",
        out / "patches" / f"{layer}.zarr", out / "similarity" / f"{layer}.zarr", out / "gallery" / layer,
        run=fake.run, n_patches=2,
    )
    return fake


def test_hostile_names_survive_tables_2_and_3(hostile_names_run):
    out = hostile_names_run.out
    metrics = pd.read_csv(out / "metrics" / "all_layers.csv")
    by_neuron = {(r.layer, r.neuron): parse_top_classes(r.top_classes) for r in metrics.itertuples()}
    for table in ("sf", "mf"):
        rows = pd.read_csv(out / "tables" / f"{table}.csv")
        assert len(rows)
        for r in rows.itertuples():
            assert parse_top_classes(r.top_classes) == by_neuron[(r.layer, r.neuron)]


def test_hostile_names_survive_the_gallery_page(hostile_names_run):
    out, layer = hostile_names_run.out, hostile_names_run.layers[0]
    page = (out / "gallery" / layer / "index.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page  # escaped, never markup
    metrics = pd.read_csv(out / "metrics" / f"{layer}.csv")
    shown = 0
    for r in metrics.itertuples():
        pairs = parse_top_classes(r.top_classes)
        if pairs:  # the card's tooltip lists every top class, escaped
            title = html.escape(", ".join(f"{name} ({count})" for name, count in pairs))
            assert f'title="{title}"' in page
            shown += 1
    assert shown and html.escape("<script>alert(1)</script>") in page


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # no CJK font here: boxes, same text
def test_hostile_names_survive_the_neuron_picture(hostile_names_run, tmp_path):
    out, layer = hostile_names_run.out, hostile_names_run.layers[0]
    metrics = out / "metrics" / f"{layer}.csv"
    table = pd.read_csv(metrics)
    tex = table["top_classes"].map(lambda cell: any("$" in name for name, _ in parse_top_classes(cell)))
    neuron = int(table.loc[tex, "neuron"].iloc[0])  # one whose top classes hold "$x^$ TeX"
    row = read_metrics_row(metrics, neuron)
    rf, n = 3, 2
    ics = {"gray": _rng.normal(size=(n, rf, rf)), "rgb": _rng.normal(size=(n, rf, rf, 3)),
           "uint8": _rng.integers(0, 256, (n, rf, rf, 3), dtype=np.uint8),
           "fits": {"gray": {"status": "ok", "n_iter": 5}}}
    fig = neuron_figure(_rng.integers(0, 256, (4, rf, rf, 3), dtype=np.uint8), ics, row, layer=layer, neuron=neuron)
    expected = "; ".join(f"{name} ({count})" for name, count in parse_top_classes(row["top_classes"]))
    assert f"top classes: {expected}" in [t.get_text().replace("\\$", "$") for t in fig.texts]
    fig.savefig(tmp_path / "n.png", format="png")  # a "$" in a name is not read as TeX: it renders
    assert (tmp_path / "n.png").stat().st_size > 0


# ------------------------------------------------------------------------------ interrupted runs


@pytest.mark.e2e
def test_output_left_incomplete_by_a_kill_is_rerun_thanks_to_the_default_profile(tmp_path):
    """After kill -9 an output can be marked incomplete; profiles/default makes Snakemake rerun it."""
    repo = Path(__file__).resolve().parents[1]
    for item in ("Snakefile", "rules", "workflow", "config", "envs", "profiles", "tests/configs"):
        (tmp_path / item).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (repo / item).is_dir() else shutil.copy)(repo / item, tmp_path / item)
    target = "results/tiny/model/layers.csv"
    (tmp_path / target).parent.mkdir(parents=True)
    (tmp_path / target).write_text("layer\n")  # what a job killed at the wrong moment leaves
    marker = tmp_path / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(target.encode()).decode()
    marker.parent.mkdir(parents=True)
    marker.write_text("")

    def dry_run(*extra):
        cmd = [sys.executable, "-m", "snakemake", "-n", target, *extra, "--cores", "2",
               "--configfile", "tests/configs/tiny.yaml"]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    without = dry_run("--workflow-profile", "none")  # the control: Snakemake's own default
    assert without.returncode != 0 and "IncompleteFilesException" in without.stdout + without.stderr
    with_profile = dry_run()
    assert with_profile.returncode == 0, with_profile.stderr[-2000:]
    assert "profiles/default" in with_profile.stdout + with_profile.stderr
    assert "rule layers:" in with_profile.stdout


# ----------------------------------------------------------------- ties and the names of things


def _tie_run(tmp: Path, layout: dict[str, dict[str, np.ndarray]]) -> tuple[Path, Path]:
    """``layout``: {class folder: {file name: pixels}} through the dataset stage, one extraction
    and encode_topk (k = 3) of conv1_1; returns the shard and the top-k store."""
    root = tmp / "root"
    for folder, files in layout.items():
        (root / folder).mkdir(parents=True)
        for name, pixels in files.items():
            Image.fromarray(pixels).save(root / folder / name)
    config, out, shard = _dataset_and_extraction(tmp, root)
    topk = out / "topk.zarr"
    encode.encode_layer([shard], out / "images.csv", out / "classes.csv", "conv1_1", 3, topk, out / "cof.zarr", config)
    encode.layer_metrics(out / "cof.zarr", "conv1_1", "class", out / "metrics.csv")
    return shard, out


def test_ties_depend_on_the_pictures_not_on_class_or_file_names(tmp_path):
    """Uniform white pictures of several sizes give one crop, hence equal activations, from
    different files. Under other class and file names (another class order, so other image
    ids) every neuron keeps the same top-k pictures and the same metrics."""
    from neurofacets.topk import read_topk

    white = {f"w{i}": np.full((30 + i, 30 + i, 3), 255, np.uint8) for i in range(6)}
    noise = {f"n{i}": _pixels(36, 36) for i in range(6)}
    first = {"a": {"w0.png": white["w0"], "w1.png": white["w1"], "n0.png": noise["n0"], "n1.png": noise["n1"]},
             "b": {"w2.png": white["w2"], "w3.png": white["w3"], "n2.png": noise["n2"], "n3.png": noise["n3"]},
             "c": {"w4.png": white["w4"], "w5.png": white["w5"], "n4.png": noise["n4"], "n5.png": noise["n5"]}}
    # the same pictures: classes renamed so that their order reverses, files renamed
    renamed = {"z": {f"x_{n}": p for n, p in first["a"].items()}, "y": {f"y_{n}": p for n, p in first["b"].items()},
               "x": {f"z_{n}": p for n, p in first["c"].items()}}
    shard, one = _tie_run(tmp_path / "first", first)
    _, two = _tie_run(tmp_path / "renamed", renamed)
    a, b = read_topk(one / "topk.zarr"), read_topk(two / "topk.zarr")
    # the test exercises ties: some neurons have more than k = 3 images at their k-th value
    values = zarr.open_group(str(shard), mode="r")["conv1_1"]["max"][:]
    kth = a.value[:, -1]
    tied = ((values == kth[None, :]).sum(axis=0) > 3) & (kth > 0)
    assert tied.sum() >= 3, "no neuron of the fixture has a tie at its k-th place"
    np.testing.assert_array_equal(a.content_key, b.content_key)  # the same pictures, in the same order
    np.testing.assert_array_equal(a.value, b.value)
    ma, mb = pd.read_csv(one / "metrics.csv"), pd.read_csv(two / "metrics.csv")
    for column in ("n_counted", "sparsity", "flatness", "mf"):
        np.testing.assert_array_equal(ma[column].to_numpy(), mb[column].to_numpy())
