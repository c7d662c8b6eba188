"""Label and coarse tables that would give a silently wrong CoF: each stops the run naming the
lines, or is accepted exactly as stated (issue 20).

Coarse tables (``dataset.coarse_labels``): one class in two groups, an empty group, ``NA`` as a
class, ``01`` against ``1``. Label CSVs (``dataset.labels``): one file under two paths, a column
named twice, 25-digit labels. Any dataset: a single class is refused by the dataset stage,
before any extraction, also through the real command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow
from PIL import Image

from neurofacets.datasets import (
    DatasetError,
    TooFewClassesError,
    build_dataset,
    list_csv,
    list_folder,
    write_dataset,
)

BIG = ["1000000000000000000000001", "1000000000000000000000002", "1000000000000000000000003"]


def _images(root: Path, names: list[str]) -> Path:
    """Small distinct PNGs at ``root/<name>``."""
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(root / name)
    return root


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _tables(tmp_path: Path, labels_text: str, coarse_text: str | None = None, n: int = 4) -> Path:
    """Write ``img/0.png`` .. under ``root``, the label CSV and the coarse CSV; build the tables in ``out``."""
    root = _images(tmp_path / "root", [f"img/{i}.png" for i in range(n)])
    labels = _write(tmp_path / "labels.csv", labels_text)
    coarse = _write(tmp_path / "coarse.csv", coarse_text) if coarse_text is not None else None
    out = tmp_path / "out"
    write_dataset(list_csv(labels, root), out / "images.csv", out / "classes.csv", out / "skipped.csv",
                  images_per_class=None, shards=1, coarse_labels=coarse)
    return out


def _refused(tmp_path: Path, labels_text: str, coarse_text: str | None = None) -> str:
    with pytest.raises(DatasetError) as info:
        _tables(tmp_path, labels_text, coarse_text)
    assert not (tmp_path / "out" / "images.csv").exists()
    return str(info.value)


# ------------------------------------------------------------------------------ coarse tables

LABELS = "path,label,class_name\nimg/0.png,0,cat\nimg/1.png,1,dog\nimg/2.png,2,oak\n"


def test_coarse_class_in_two_groups_stops_naming_the_lines(tmp_path):
    coarse = "class_id,coarse\n0,animal\n1,animal\n0,plant\n2,plant\n"
    assert _refused(tmp_path, LABELS, coarse) == (
        f"dataset.coarse_labels: {tmp_path / 'coarse.csv'} puts class_id '0' in 2 groups ['animal', 'plant'] "
        "on lines 2, 4; give each class one group"
    )


def test_coarse_class_in_two_groups_is_refused_by_name_too(tmp_path):
    coarse = "class_name,coarse\ncat,animal\ndog,animal\noak,plant\ndog,plant\n"
    assert "puts class_name 'dog' in 2 groups ['animal', 'plant'] on lines 3, 5;" in _refused(tmp_path, LABELS, coarse)


def test_coarse_class_repeated_with_the_same_group_is_accepted(tmp_path):
    coarse = "class_id,coarse\n0,animal\n1,animal\n2,plant\n0,animal\n"
    out = _tables(tmp_path, LABELS, coarse)
    assert _read(out / "classes.csv")["coarse"].tolist() == ["animal", "animal", "plant"]
    assert _read(out / "images.csv")["coarse"].tolist() == ["animal", "animal", "plant"]


@pytest.mark.parametrize("coarse,message", [
    ("class_id,coarse\n0,animal\n1,\n2,plant\n", "has an empty coarse on line 3"),
    ("class_id,coarse\n0,animal\n1,  \n2,plant\n", "has an empty coarse on line 3"),
    ("class_id,coarse\n0,animal\n,animal\n1,animal\n2,plant\n", "has an empty class_id on line 3"),
], ids=["empty group", "blank group", "empty class"])
def test_coarse_empty_cell_stops_naming_the_line(tmp_path, coarse, message):
    assert _refused(tmp_path, LABELS, coarse) == f"dataset.coarse_labels: {tmp_path / 'coarse.csv'} {message}"


def test_coarse_group_written_two_ways_stops(tmp_path):
    coarse = "class_id,coarse\n0,animal\n1,animal \n2,plant\n"
    assert _refused(tmp_path, LABELS, coarse).endswith(
        "writes one group in 2 ways ['animal', 'animal '] on lines 2, 3; write each group the same way")


def test_coarse_cells_are_names_as_written(tmp_path):
    """NA, null and None are class ids and groups, never missing values."""
    labels = "path,label\nimg/0.png,NA\nimg/1.png,null\nimg/2.png,None\nimg/3.png,7\n"
    coarse = "class_id,coarse\nNA,None\nnull,NA\nNone,NA\n7,null\n"
    out = _tables(tmp_path, labels, coarse)
    classes = _read(out / "classes.csv")
    assert classes[["class_id", "coarse"]].values.tolist() == [["7", "null"], ["NA", "None"], ["None", "NA"],
                                                               ["null", "NA"]]
    images = _read(out / "images.csv")
    assert images["coarse"].tolist() == ["null", "None", "NA", "NA"]  # images of 7, NA, None, null


def test_coarse_class_ids_match_as_text(tmp_path):
    """``01`` is not ``1``: the class 01 has no group."""
    labels = "path,label\nimg/0.png,01\nimg/1.png,2\n"
    coarse = "class_id,coarse\n1,odd\n2,even\n"
    assert _refused(tmp_path, labels, coarse).endswith("has no group for 1 classes, e.g. ['01']")
    out = _tables(tmp_path / "ok", labels, "class_id,coarse\n01,odd\n2,even\n1,unused\n")
    assert _read(out / "classes.csv")[["class_id", "coarse"]].values.tolist() == [["01", "odd"], ["2", "even"]]


def test_coarse_header_with_a_repeated_column_stops(tmp_path):
    coarse = "class_id,coarse,coarse\n0,animal,x\n1,animal,x\n2,plant,x\n"
    assert _refused(tmp_path, LABELS, coarse) == (
        f"dataset.coarse_labels: {tmp_path / 'coarse.csv'} names the column(s) ['coarse'] more than once in its "
        "header (line 1); name each column once"
    )


# ------------------------------------------------------------------------------ label CSVs


def _linked_root(tmp_path: Path) -> Path:
    """``root/a/x.png``, ``root/a/y.png`` and ``root/link_to_a`` -> ``a`` (a symbolic link to the folder)."""
    root = _images(tmp_path / "root", ["a/x.png", "a/y.png", "b/z.png"])
    os.symlink("a", root / "link_to_a")
    return root


def test_one_file_under_two_paths_with_two_labels_stops(tmp_path):
    root = _linked_root(tmp_path)
    labels = _write(tmp_path / "labels.csv", "path,label\na/x.png,0\na/y.png,0\nlink_to_a/x.png,1\nb/z.png,1\n")
    with pytest.raises(DatasetError) as info:
        list_csv(labels, root)
    assert str(info.value) == (
        f"dataset.labels: {labels} lists one file as 'a/x.png', 'link_to_a/x.png' (all lead to "
        f"{os.path.realpath(root / 'a' / 'x.png')}) with different labels on lines 2, 4 ('0', '1')"
    )


def test_one_file_through_a_hard_link_with_two_labels_stops(tmp_path):
    root = _images(tmp_path / "root", ["a/x.png", "b/z.png"])
    os.link(root / "a" / "x.png", root / "b" / "x_again.png")
    labels = _write(tmp_path / "labels.csv", "path,label\na/x.png,0\nb/z.png,1\nb/x_again.png,1\n")
    with pytest.raises(DatasetError, match=r"lists one file as 'a/x.png', 'b/x_again.png' .* with different "
                                           r"labels on lines 2, 4 \('0', '1'\)"):
        list_csv(labels, root)


def test_one_file_under_two_paths_with_one_label_is_kept_once(tmp_path):
    root = _linked_root(tmp_path)
    labels = _write(tmp_path / "labels.csv", "path,label\na/x.png,0\na/y.png,0\nlink_to_a/x.png,0\nb/z.png,1\n")
    out = tmp_path / "out"
    images = write_dataset(list_csv(labels, root), out / "images.csv", out / "classes.csv", out / "skipped.csv",
                           images_per_class=None, shards=1)
    assert images["path"].tolist() == [str(root / p) for p in ("a/x.png", "a/y.png", "b/z.png")]
    skipped = _read(out / "skipped.csv")
    assert skipped.values.tolist() == [[str(root / "link_to_a/x.png"), "0",
                                        "listed again: same file and label as line 2 of labels.csv"]]


def test_label_header_with_a_repeated_column_stops(tmp_path):
    message = _refused(tmp_path, "path,label,label\nimg/0.png,0,1\nimg/1.png,1,0\n")
    assert message == (f"dataset.labels: {tmp_path / 'labels.csv'} names the column(s) ['label'] more than once "
                       "in its header (line 1); name each column once")
    message = _refused(tmp_path, "path,label,path,class_name,class_name\nimg/0.png,0,img/1.png,a,b\n")
    assert "names the column(s) ['path', 'class_name'] more than once" in message


def test_25_digit_labels_are_three_classes_in_exact_numeric_order(tmp_path):
    # 1e24 + 1 and 1e24 are one float: an order by floats would tie them and keep the path order
    labels = (f"path,label\nimg/0.png,{BIG[2]}\nimg/1.png,{BIG[0]}\nimg/2.png,{BIG[1]}\n"
              "img/3.png,999999999999999999999999\n")
    out = _tables(tmp_path, labels)
    classes = _read(out / "classes.csv")
    assert classes["class_id"].tolist() == ["999999999999999999999999", *BIG]
    assert classes["label"].tolist() == ["0", "1", "2", "3"]
    images = _read(out / "images.csv")
    assert images["path"].str.rsplit("/", n=1).str[-1].tolist() == ["3.png", "1.png", "2.png", "0.png"]
    tie = "path,label\nimg/0.png,1000000000000000000000001\nimg/1.png,1000000000000000000000000\n"
    out = _tables(tmp_path / "tie", tie, n=2)
    assert _read(out / "classes.csv")["class_id"].tolist() == ["1000000000000000000000000",
                                                               "1000000000000000000000001"]


def test_integer_labels_sort_numerically_and_other_labels_as_text(tmp_path):
    out = _tables(tmp_path, "path,label\nimg/0.png,10\nimg/1.png,9\nimg/2.png,-3\nimg/3.png,100\n")
    assert _read(out / "classes.csv")["class_id"].tolist() == ["-3", "9", "10", "100"]
    out = _tables(tmp_path / "text", "path,label\nimg/0.png,10\nimg/1.png,9\nimg/2.png,b\nimg/3.png,100\n")
    assert _read(out / "classes.csv")["class_id"].tolist() == ["10", "100", "9", "b"]


@pytest.mark.parametrize("text,forms", [
    ("path,label\nimg/0.png,0\nimg/1.png,0.0\nimg/2.png,1\n", "['0', '0.0'] on lines 2, 3"),
    ("path,label\nimg/0.png,1\nimg/1.png, 1\nimg/2.png,2\n", "['1', ' 1'] on lines 2, 3"),
    (f"path,label\nimg/0.png,{BIG[0]}\nimg/1.png,{BIG[1]}\nimg/2.png,{BIG[0]}.0\n",
     f"['{BIG[0]}', '{BIG[0]}.0'] on lines 2, 4"),
    ("path,label\nimg/0.png,cat\nimg/1.png,dog\nimg/2.png,cat \n", "['cat', 'cat '] on lines 2, 4"),
], ids=["0 and 0.0", "1 and ' 1'", "25 digits and .0", "text and a blank"])
def test_one_label_written_two_ways_is_still_refused(tmp_path, text, forms):
    assert _refused(tmp_path, text).endswith(f"writes one label in 2 ways {forms}; write each label the same way")


@pytest.mark.parametrize("text,message", [
    ("path,label\nimg/0.png,0\nimg/1.png\nimg/2.png,1\n",
     ("is not a readable CSV: the header (line 1) has 2 columns but line 3 has another number of fields "
      "(line 3 has 1)")),
    ("path,label\n\n\nimg/0.png,0\nimg/1.png,1,x\n",
     ("is not a readable CSV: the header (line 1) has 2 columns but line 5 has another number of fields "
      "(line 5 has 3)")),
    ('path,label\nimg/0.png,0\nimg/1.png,"1\n',
     "is not a readable CSV: unexpected end of data in the record that starts on line 3"),
    (b"path,label\nimg/0.png,0\nimg/1.png,caf\xe9\n",
     ("is not UTF-8 text: line 3 holds the byte 0xe9, which is not UTF-8 (invalid continuation byte); "
      "save the file as UTF-8")),
    ("", "is empty: not even a header line"),
], ids=["short record", "long record after blank lines", "open quote", "not UTF-8", "empty file"])
def test_malformed_label_csv_names_the_line(tmp_path, text, message):
    assert _refused(tmp_path, text) == f"dataset.labels: {tmp_path / 'labels.csv'} {message}"


def test_line_numbers_count_blank_lines_and_quoted_newlines(tmp_path):
    text = 'path,label,class_name\n\nimg/0.png,0,"two\nlines"\nimg/1.png,1,x\nimg/2.png,0,y\n'
    assert _refused(tmp_path, text).endswith("gives label '0' the class names ['two\\nlines', 'y'] on lines 3, 6")


# ------------------------------------------------------------------------------ one class


def test_single_class_folder_is_refused_by_the_dataset_stage(tmp_path):
    root = _images(tmp_path / "root", ["cat/0.png", "cat/1.png"])
    with pytest.raises(TooFewClassesError) as info:
        build_dataset(list_folder(root), images_per_class=None, shards=1)
    assert str(info.value) == (
        "the dataset has 1 class with usable images: 'cat' (2 images); the CoF, sparsity, flatness and MF degree "
        "compare classes, so at least 2 are needed"
    )


def test_class_whose_images_are_all_skipped_counts_as_absent(tmp_path):
    root = _images(tmp_path / "root", ["cat/0.png", "cat/1.png"])
    (root / "dog").mkdir()
    (root / "dog" / "empty.png").write_bytes(b"")
    (root / "dog" / "notes.txt").write_text("x")
    out = tmp_path / "out"
    with pytest.raises(TooFewClassesError) as info:
        write_dataset(list_folder(root), out / "images.csv", out / "classes.csv", out / "skipped.csv",
                      images_per_class=None, shards=1)
    assert str(info.value) == (
        "the dataset has 1 class with usable images: 'cat' (2 images); 1 more class(es) listed without a usable "
        "image count as absent: ['dog'] (each skipped file with its reason in the log); the CoF, sparsity, "
        "flatness and MF degree compare classes, so at least 2 are needed"
    )
    assert _read(out / "skipped.csv")["reason"].tolist() == ["empty file", "not an image file extension (.txt)"]
    assert not (out / "images.csv").exists() and not (out / "classes.csv").exists()
    # the control: a usable dog image makes two classes
    Image.new("RGB", (8, 8)).save(root / "dog" / "ok.png")
    images = write_dataset(list_folder(root), out / "images.csv", out / "classes.csv", out / "skipped.csv",
                           images_per_class=None, shards=1)
    assert images["label"].tolist() == [0, 0, 1]


def test_single_label_csv_is_refused(tmp_path):
    assert _refused(tmp_path, "path,label\nimg/0.png,5\nimg/1.png,5\n") == (
        "the dataset has 1 class with usable images: '5' (2 images); the CoF, sparsity, flatness and MF degree "
        "compare classes, so at least 2 are needed"
    )


@pytest.mark.e2e
def test_single_class_stops_the_dataset_rule_through_the_command_line(tmp_path):
    """``snakemake results/<run>/dataset/images.csv`` on a one-class CSV fails in the dataset job, with the message."""
    workdir = copy_workflow(tmp_path)
    root = _images(workdir / "data", ["img/0.png", "img/1.png", "img/2.png"])
    _write(root / "labels.csv", "path,label,class_name\nimg/0.png,3,cat\nimg/1.png,3,cat\nimg/2.png,4,dog\n")
    (root / "img" / "2.png").write_bytes(b"")  # the only dog: skipped, so one class is left
    config = yaml.safe_load((workdir / "tests/configs/tiny.yaml").read_text())
    config["run"] = "tables"
    config["dataset"] = {"format": "csv", "root": "data", "labels": "labels.csv", "images_per_class": None}
    (workdir / "tests/configs/tiny.yaml").write_text(yaml.safe_dump(config))
    target = "results/tables/dataset/images.csv"
    cmd = [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", "tests/configs/tiny.yaml"]
    result = subprocess.run(cmd, check=False, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    log = (workdir / "results/tables/logs/dataset.log").read_text()
    message = ("the dataset has 1 class with usable images: '3' (2 images); 1 more class(es) listed without a "
               "usable image count as absent: ['4'] (each skipped file with its reason in the log); the CoF, "
               "sparsity, flatness and MF degree compare classes, so at least 2 are needed")
    assert message in log
    assert "skipped data/img/2.png: empty file" in log
    assert "rule dataset:" in result.stdout + result.stderr
    assert "rule extract" not in result.stdout + result.stderr
    assert not (workdir / target).exists()
    # the control: with the dog usable, the same command builds the table
    Image.new("RGB", (8, 8)).save(root / "img" / "2.png")
    result = subprocess.run(cmd, check=False, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _read(workdir / target)["label"].tolist() == ["0", "0", "1"]


def test_class_names_that_look_like_numbers_reach_the_cof_as_written(tmp_path):
    """Class names ``01``, ``1.50`` and groups ``007`` stay text in the CoF store (not 1.0, 1.5, 7)."""
    from neurofacets.cof import load_labels

    (tmp_path / "images.csv").write_text("image_id,path,label,class_name,shard,coarse\n"
                                         "0,a.png,0,01,0,007\n1,b.png,1,1.50,0,x\n")
    (tmp_path / "classes.csv").write_text("label,class_id,class_name,coarse\n0,01,01,007\n1,1.50,1.50,x\n")
    labels = load_labels(tmp_path / "images.csv", tmp_path / "classes.csv")
    assert labels.level("class").names == ("01", "1.50")
    assert labels.level("coarse").names == ("007", "x")
