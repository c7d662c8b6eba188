"""Dataset tables from class folders and CSV lists: order, caps, shards, skips, errors."""

import pandas as pd
import pytest
from PIL import Image

from neurofacets.datasets import CAPPED_REASON, DatasetError, build_dataset, list_csv, list_folder, write_dataset


def _tree(root, classes, per_class=3):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(root / c / f"{i}.png")
    return root


def test_folder_tree_ordered_capped_and_sharded(tmp_path):
    root = _tree(tmp_path / "data", ["n02", "n01", "n03"], per_class=4)
    (root / "n01" / "readme.txt").write_text("not an image")
    (root / "n02" / "0.png").write_bytes(b"")  # empty file
    images, classes, skipped = build_dataset(list_folder(root), images_per_class=3, shards=2)
    assert list(classes["class_id"]) == ["n01", "n02", "n03"]
    assert list(images["image_id"]) == list(range(9))
    assert images.groupby("label").size().tolist() == [3, 3, 3]
    # the refused files first, then the images over the cap: each class's last in sorted order
    assert skipped["reason"].tolist() == ["not an image file extension (.txt)", "empty file",
                                          CAPPED_REASON, CAPPED_REASON]
    assert [p.split("/data/")[1] for p in skipped["path"][2:]] == ["n01/3.png", "n03/3.png"]
    assert skipped["class_id"].tolist()[2:] == ["n01", "n03"]
    # shards are contiguous blocks covering every image exactly once
    assert images["shard"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert not images["path"].str.endswith("n02/0.png").any()


def test_cap_is_logged_and_every_listed_entry_is_in_one_table(tmp_path, caplog):
    """dataset.images_per_class: the images it leaves out are in skipped.csv (one log line, not
    one per image); without a cap, or with one no class exceeds, nothing is left out."""
    root = _tree(tmp_path / "data", ["a", "b", "c"], per_class=5)
    (root / "c" / "4.png").write_bytes(b"")  # c: 4 usable
    out = tmp_path / "out"
    out.mkdir()
    tables = [out / "images.csv", out / "classes.csv", out / "skipped.csv"]
    with caplog.at_level("INFO", logger="neurofacets"):
        images = write_dataset(list_folder(root), *tables, images_per_class=4, shards=1)
    skipped = pd.read_csv(tables[2])
    assert len(images) == 12 and len(images) + len(skipped) == 15
    assert skipped["reason"].tolist() == ["empty file", CAPPED_REASON, CAPPED_REASON]
    assert [p.rsplit("/", 2)[1:] for p in skipped["path"]] == [["c", "4.png"], ["a", "4.png"], ["b", "4.png"]]
    assert ("dataset.images_per_class = 4 leaves out 2 of 14 usable images (2 of 3 classes capped): the run "
            "analyses 12") in caplog.text
    assert "skipped" not in " ".join(r.getMessage() for r in caplog.records if "a/4.png" in r.getMessage())
    assert "12 images of 3 classes in 1 shards; 3 of the 15 files listed skipped" in caplog.text
    for cap in (None, 5):
        caplog.clear()
        with caplog.at_level("INFO", logger="neurofacets"):
            images = write_dataset(list_folder(root), *tables, images_per_class=cap, shards=1)
        assert len(images) == 14 and pd.read_csv(tables[2])["reason"].tolist() == ["empty file"]
        assert "images_per_class" not in caplog.text


def test_empty_class_folder_and_empty_dataset_are_errors(tmp_path):
    root = _tree(tmp_path / "data", ["a"])
    (root / "b").mkdir()
    with pytest.raises(DatasetError, match=r"without any file.*\['b'\]"):
        list_folder(root)
    with pytest.raises(DatasetError, match="no class folders"):
        list_folder(tmp_path / "data" / "a")
    bad = tmp_path / "bad"
    (bad / "c").mkdir(parents=True)
    (bad / "c" / "x.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="no usable images"):
        build_dataset(list_folder(bad), images_per_class=None, shards=1)


def test_csv_list_with_missing_files_is_an_error(tmp_path):
    root = _tree(tmp_path / "data", ["a"])
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"path": ["a/0.png", "a/9.png"], "label": [5, 5]}).to_csv(labels, index=False)
    with pytest.raises(DatasetError, match="1 file.*do not exist"):
        list_csv(labels, root)
    pd.DataFrame({"file": ["a/0.png"]}).to_csv(labels, index=False)
    with pytest.raises(DatasetError, match="lacks column"):
        list_csv(labels, root)


def test_csv_labels_relabelled_in_numeric_order_with_coarse_groups(tmp_path):
    root = _tree(tmp_path / "data", ["a"], per_class=3)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"path": ["a/0.png", "a/1.png", "a/2.png"], "label": [10, 2, 10],
                  "class_name": ["ten", "two", "ten"]}).to_csv(labels, index=False)
    coarse = tmp_path / "coarse.csv"
    pd.DataFrame({"class_name": ["ten", "two"], "coarse": ["even", "even"]}).to_csv(coarse, index=False)
    out = tmp_path / "out"
    images = write_dataset(list_csv(labels, root), out / "images.csv", out / "classes.csv",
                           out / "skipped.csv", images_per_class=None, shards=3, coarse_labels=coarse)
    classes = pd.read_csv(out / "classes.csv")
    assert classes["class_id"].tolist() == [2, 10]  # numeric, not text order
    assert images["label"].tolist() == [0, 1, 1] and images["class_name"].tolist() == ["two", "ten", "ten"]
    assert images["coarse"].tolist() == ["even"] * 3
    assert images["shard"].tolist() == [0, 1, 2]
    pd.DataFrame({"class_name": ["ten"], "coarse": ["x"]}).to_csv(coarse, index=False)
    with pytest.raises(DatasetError, match="no group for 1 classes"):
        build_dataset(list_csv(labels, root), images_per_class=None, shards=1, coarse_labels=coarse)


def test_header_check_refuses_bombs(tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    Image.new("L", (200, 200)).save(root / "a" / "big.png")
    Image.new("L", (10, 10)).save(root / "a" / "small.png")
    (root / "b").mkdir()
    Image.new("L", (10, 10)).save(root / "b" / "small.png")  # a second class: one alone is refused
    images, _, skipped = build_dataset(list_folder(root), images_per_class=None, shards=1,
                                       max_pixels=10_000)
    assert len(images) == 2 and skipped["path"].tolist() == [str(root / "a" / "big.png")]
    assert skipped["reason"].str.contains("decompression bomb").all()
