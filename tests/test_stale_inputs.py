"""A change of the image files reruns what depends on them, through the real command line (issue 20).

The images are the workflow's first input, yet no rule names them: the dataset rule carries
their state (paths, sizes, times: neurofacets.dataset_state) as a param, and writes it to
dataset/state.json, an input of the rules that read the images. Here, on a tiny dataset
(random VGG16, conv1_1, 32 px): an image added, then one overwritten with other pixels
under its name, in a class folder; a file a CSV lists, overwritten, in a two-run config.
Each time `snakemake -n` plans the dataset job and its dependents, and after the build a
second call plans nothing. The overwrite leaves images.csv byte for byte the same (paths and
labels only): the shard is rebuilt all the same, through state.json, also when only the
image table was built in between, and its activations then are those of the new pixels.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr
from conftest import copy_workflow
from PIL import Image

pytestmark = pytest.mark.e2e

CLASSES = ("cat", "dog", "fox")
FOLDER = {
    "run": "stale",
    "model": {"arch": "vgg16", "weights": "random:0", "layers": ["conv1_1"]},
    "dataset": {"format": "folder", "root": "data", "images_per_class": None},
    "extraction": {"shards": 1},
}
# two runs (their modules are rules csv_a__*, csv_b__*) on the images a CSV lists
CSV_RUNS = {
    "run": "csvcmp",
    "model": {"arch": "vgg16", "weights": "random:0", "layers": ["conv1_1"]},
    "dataset": {"format": "csv", "root": "data", "labels": "labels.csv", "images_per_class": None},
    "runs": [{"run": "csv_a"}, {"run": "csv_b", "model": {"weights": "random:1"}}],
    "runs_build": "compare",
}
SHARD = "results/stale/activations/shard-000.zarr"
TABLE = "results/stale/dataset/images.csv"
CSV_TABLES = ["results/csv_a/dataset/images.csv", "results/csv_b/dataset/images.csv"]


def _png(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("stale"))
    for c, cls in enumerate(CLASSES):
        (workdir / "data" / cls).mkdir(parents=True)
        for i in range(3):
            _png(workdir / "data" / cls / f"{i}.png", seed=10 * c + i)
    (workdir / "stale.yaml").write_text(yaml.safe_dump(FOLDER))
    (workdir / "csv.yaml").write_text(yaml.safe_dump(CSV_RUNS))
    (workdir / "data" / "labels.csv").write_text(
        "path,label\n" + "".join(f"{cls}/{i}.png,{cls}\n" for cls in CLASSES for i in range(3))
    )
    return workdir


def _snakemake(workdir: Path, config: str, *args: str) -> str:
    # targets first: --configfile takes every following word as a file
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--configfile", "tests/configs/tiny.yaml", config]
    result = subprocess.run(cmd, check=False, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _plan(workdir: Path, config: str, *targets: str) -> dict[str, str]:
    """The jobs `snakemake -n` plans: rule name -> the reason it gives ({} when nothing is to be done)."""
    out = _snakemake(workdir, config, "-n", *targets)
    jobs = {}
    for job in re.finditer(r"^\s*(?:local)?rule (\w+):\n((?:[ \t]+\S.*\n?)*)", out, flags=re.MULTILINE):
        reason = re.search(r"reason: (.*)", job.group(2))
        jobs[job.group(1)] = reason.group(1) if reason else ""
    assert bool(jobs) != ("Nothing to be done" in out), out[-3000:]
    return jobs


def _activations(workdir: Path) -> tuple[list[str], np.ndarray]:
    """The shard's image paths (in image id order) and their conv1_1 activations."""
    import pandas as pd

    paths = list(pd.read_csv(workdir / TABLE)["path"])
    shard = zarr.open_group(str(workdir / SHARD), mode="r")
    assert list(shard["image_id"][:]) == list(range(len(paths)))
    return paths, shard["conv1_1"]["max"][:]


def test_a_class_folder_changed_reruns_the_dataset_and_the_extraction(workdir):
    _snakemake(workdir, "stale.yaml", SHARD)
    paths, before = _activations(workdir)
    assert len(paths) == 9

    # (a) an image added to a class folder
    _png(workdir / "data" / "dog" / "9.png", seed=99)
    planned = _plan(workdir, "stale.yaml", SHARD)
    assert set(planned) == {"dataset", "extract"}, planned
    assert "Params have changed" in planned["dataset"]
    _snakemake(workdir, "stale.yaml", SHARD)
    assert _plan(workdir, "stale.yaml", SHARD) == {}
    paths, before = _activations(workdir)
    assert "data/dog/9.png" in paths and len(paths) == 10

    # (b) an image overwritten with other pixels, same name: images.csv does not change
    table = (workdir / TABLE).read_bytes()
    _png(workdir / "data" / "cat" / "1.png", seed=1234)
    planned = _plan(workdir, "stale.yaml", SHARD)
    assert set(planned) == {"dataset", "extract"}, planned
    _snakemake(workdir, "stale.yaml", TABLE)  # the image table alone first
    assert (workdir / TABLE).read_bytes() == table
    assert _plan(workdir, "stale.yaml", TABLE) == {}
    planned = _plan(workdir, "stale.yaml", SHARD)  # the shard is stale all the same
    assert set(planned) == {"extract"} and "state.json" in planned["extract"], planned
    _snakemake(workdir, "stale.yaml", SHARD)
    assert _plan(workdir, "stale.yaml", SHARD) == {}
    paths, after = _activations(workdir)
    changed = [p for p, b, a in zip(paths, before, after) if not np.array_equal(b, a)]
    assert changed == ["data/cat/1.png"]

    log = (workdir / "results" / "stale" / "logs" / "dataset.log").read_text()
    state = yaml.safe_load((workdir / "results" / "stale" / "dataset" / "state.json").read_text())
    assert f"dataset state: fingerprint {state['fingerprint']} over 10 files" in log


def test_a_file_a_csv_lists_overwritten_reruns_the_dataset_job_of_every_run(workdir):
    _snakemake(workdir, "csv.yaml", *CSV_TABLES)
    tables = [(workdir / t).read_bytes() for t in CSV_TABLES]
    assert _plan(workdir, "csv.yaml", *CSV_TABLES) == {}
    _png(workdir / "data" / "fox" / "2.png", seed=4321)
    (workdir / "data" / "fox" / "unlisted.png").write_bytes(b"not listed: no change")
    planned = _plan(workdir, "csv.yaml", *CSV_TABLES, "results/csv_a/activations/shard-000.zarr")
    assert {"csv_a__dataset", "csv_b__dataset", "csv_a__extract"} <= set(planned), planned
    assert all("Params have changed" in planned[f"{run}__dataset"] for run in ("csv_a", "csv_b"))
    _snakemake(workdir, "csv.yaml", *CSV_TABLES)
    assert _plan(workdir, "csv.yaml", *CSV_TABLES) == {}
    assert [(workdir / t).read_bytes() for t in CSV_TABLES] == tables
