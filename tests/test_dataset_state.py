"""The dataset's state (neurofacets.dataset_state): what changes it, what does not, what it costs to import.

The workflow side (a change of the files reruns the dataset job and what reads the images,
through the real command line) is tests/test_stale_inputs.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurofacets.dataset_state import dataset_fingerprint, dataset_state, iter_class_folder, write_dataset_state
from neurofacets.datasets import list_folder


def _write(path: Path, data: bytes = b"pixels") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> dict:
    root = tmp_path / "root"
    for cls in ("cat", "dog"):
        for i in range(3):
            _write(root / cls / f"{i}.png", f"{cls}{i}".encode())
    return {"format": "folder", "root": str(root)}


def _later(path: Path) -> None:
    """Let the clock pass the file system's timestamp granularity (a few ms) after ``path``'s last write."""
    before = path.stat().st_mtime_ns
    while time.time_ns() < before + 20_000_000:
        time.sleep(0.005)


def test_two_calls_agree_and_threads_do_not_matter(folder):
    first = dataset_state(folder)
    assert first == dataset_state(folder) == dataset_state(folder, threads=4)
    assert first.entries == 6 and len(first.fingerprint) == 16
    assert dataset_fingerprint(folder) == first.fingerprint


@pytest.mark.parametrize("change", ["add", "remove", "overwrite", "touch", "rename", "add_class", "nested"])
def test_a_change_of_the_listed_files_changes_it(folder, change):
    root = Path(folder["root"])
    before = dataset_fingerprint(folder)
    image = root / "cat" / "1.png"
    if change == "add":
        _write(root / "cat" / "9.png")
    elif change == "remove":
        image.unlink()
    elif change == "overwrite":  # same name, same size, other bytes
        _later(image)
        image.write_bytes(b"CAT1")
    elif change == "touch":
        os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 1_000_000_000))
    elif change == "rename":
        image.rename(root / "cat" / "1b.png")
    elif change == "add_class":  # an empty class folder: the dataset job will refuse it
        (root / "eel").mkdir()
    elif change == "nested":
        _write(root / "dog" / "more" / ".hidden-folder" / "x.png")
    assert dataset_fingerprint(folder) != before


def test_hidden_entries_and_files_outside_the_class_folders_do_not_change_it(folder):
    root = Path(folder["root"])
    before = dataset_state(folder)
    _write(root / "cat" / ".DS_Store")
    _write(root / ".cache" / "x.png")  # a hidden folder at the top is no class
    _write(root / "README.txt")  # a file next to the class folders is no image
    assert dataset_state(folder) == before


def test_a_linked_file_is_followed_and_a_linked_folder_is_not(tmp_path, folder):
    root = Path(folder["root"])
    outside = _write(tmp_path / "elsewhere" / "photo.png", b"one")
    linked = _write(tmp_path / "linked-folder" / "a.png", b"one")
    (root / "cat" / "link.png").symlink_to(outside)
    (root / "cat" / "folder-link").symlink_to(linked.parent)
    before = dataset_fingerprint(folder)
    _write(linked.parent / "b.png")  # inside a linked folder: list_folder does not go there
    assert dataset_fingerprint(folder) == before
    _later(outside)
    outside.write_bytes(b"two")  # what the link leads to: extraction reads it
    assert dataset_fingerprint(folder) != before


def test_it_walks_exactly_what_list_folder_lists(tmp_path):
    root = tmp_path / "root"
    _write(root / "a" / "x.png")
    _write(root / "a" / ".hidden.png")
    _write(root / "a" / "sub" / "deeper" / "y.png")
    _write(root / "a" / ".dot-folder" / "z.png")  # rglob enters hidden folders: listed
    _write(root / "b" / "w.png")
    _write(tmp_path / "other" / "v.png")
    (root / "b" / "to-folder").symlink_to(tmp_path / "other")  # listed, not entered
    (root / "b" / "broken").symlink_to(tmp_path / "nowhere")
    (root / "b" / "to-file").symlink_to(root / "a" / "x.png")
    os.mkfifo(root / "b" / "fifo")
    (root / "c").symlink_to(tmp_path / "other")  # a linked class folder is a class
    (root / "b" / "empty-folder").mkdir()
    expected = sorted(list_folder(root)["path"])
    walked = sorted(entry.path for cls in ("a", "b", "c") for entry in iter_class_folder(root / cls))
    assert walked == expected
    assert dataset_state({"format": "folder", "root": str(root)}).entries == len(expected)


def test_a_change_that_keeps_size_and_time_is_not_seen(folder):
    """The documented limit: the fingerprint reads sizes and times, not the bytes."""
    image = Path(folder["root"]) / "cat" / "1.png"
    stat = image.stat()
    before = dataset_fingerprint(folder)
    image.write_bytes(b"CAT1")  # same size
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dataset_fingerprint(folder) == before


def test_csv_covers_every_listed_file_and_nothing_else(tmp_path):
    root = tmp_path / "root"
    for name in ("a.png", "b.png", "unlisted.png"):
        _write(root / "imgs" / name, name.encode())
    labels = tmp_path / "labels.csv"
    labels.write_text("\ufeffpath,label\nimgs/a.png,0\n\nimgs/b.png,1\n", encoding="utf-8")  # BOM, blank line
    dataset = {"format": "csv", "root": str(root), "labels": str(labels)}
    before = dataset_state(dataset)
    assert before.entries == 2 and before == dataset_state(dataset, threads=3)
    _write(root / "imgs" / "unlisted.png", b"changed")
    assert dataset_state(dataset) == before
    listed = root / "imgs" / "b.png"
    _later(listed)
    listed.write_bytes(b"B.PNG")  # same size, same name
    assert dataset_state(dataset) != before


def test_csv_relative_labels_are_looked_up_in_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    _write(root / "a.png")
    (root / "labels.csv").write_text("label,path\n0,a.png\n")
    assert dataset_state({"format": "csv", "root": str(root), "labels": "labels.csv"}).entries == 1


def test_a_dataset_that_cannot_be_listed_has_a_state_and_no_error(tmp_path):
    """The dataset job says what is wrong; planning must not fail first."""
    missing = dataset_state({"format": "folder", "root": str(tmp_path / "absent")})
    assert missing.entries == 0
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_bytes(b"label,name\n0,x\n")  # no path column
    states = {
        missing,
        dataset_state({"format": "csv", "root": str(tmp_path), "labels": str(bad_csv)}),
        dataset_state({"format": "csv", "root": str(tmp_path), "labels": str(tmp_path / "absent.csv")}),
    }
    assert len(states) == 3
    listed = tmp_path / "listed.csv"
    listed.write_text("path,label\nnot-there.png,0\nbad\0name.png,1\n")
    assert dataset_state({"format": "csv", "root": str(tmp_path), "labels": str(listed)}).entries == 2


def test_probe_images_have_a_constant_state():
    assert dataset_state({"format": "probes", "root": None}).fingerprint == "probes"


def test_the_state_file_and_its_log_line(tmp_path, folder, caplog):
    state = dataset_state(folder).as_param()
    caplog.set_level("INFO", logger="neurofacets")
    write_dataset_state(state, tmp_path / "dataset" / "state.json")
    assert json.loads((tmp_path / "dataset" / "state.json").read_text()) == state
    assert f"fingerprint {state['fingerprint']} over 6 files" in caplog.text


def test_importing_it_imports_nothing_heavy():
    """The workflow imports it while parsing (rules/common.smk)."""
    code = ("import sys, neurofacets.dataset_state, neurofacets.prepared_weights; "
            "print([m for m in ('torch', 'numpy', 'pandas', 'zarr', 'PIL') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
