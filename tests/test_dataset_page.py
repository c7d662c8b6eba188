"""The dataset page's own config, run as a new user would: `--configfile my.yaml` through the
real Snakemake command line (issue 27). A file merged over config/config.yaml must analyse every
image it lists, must not run under the default run's name, and a cap must show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_workflow
from PIL import Image

from neurofacets.datasets import CAPPED_REASON

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
CLASSES, PER_CLASS = ("cat", "dog", "owl"), 30  # 30 > the demo's 24 probes per class


def page_config() -> str:
    """The folder dataset's config file as docs/dataset.md shows it (it includes config/examples/folder.yaml)."""
    page = (REPO / "docs" / "dataset.md").read_text(encoding="utf-8")
    assert '--8<-- "config/examples/folder.yaml"' in page
    shown = (REPO / "config" / "examples" / "folder.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(shown)["dataset"]["root"] == "/path/to/imagenet/train"
    return shown


def with_root(text: str, root: Path) -> str:
    """The shown config with its placeholder root replaced by ``root``, nothing else touched."""
    assert text.count("/path/to/imagenet/train") == 1
    return text.replace("/path/to/imagenet/train", str(root))


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=1200)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("dataset-page"))
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (workdir / "images" / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(workdir / "images" / name / f"{i:02d}.png")
    return workdir


def test_the_pages_folder_config_uses_every_image(workdir):
    shown = page_config()
    run = yaml.safe_load(shown)["run"]
    (workdir / "my.yaml").write_text(with_root(shown, workdir / "images"))
    # the target first: --configfile takes every following word as a file
    result = snakemake(workdir, f"results/{run}/dataset/images.csv", "--cores", "1", "--configfile", "my.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    images = pd.read_csv(workdir / "results" / run / "dataset" / "images.csv")
    assert len(images) == len(CLASSES) * PER_CLASS  # not the demo's 24 per class
    assert images.groupby("class_name").size().to_dict() == dict.fromkeys(CLASSES, PER_CLASS)
    assert pd.read_csv(workdir / "results" / run / "dataset" / "skipped.csv").empty
    assert "images_per_class" not in (workdir / "results" / run / "logs" / "dataset.log").read_text()
    assert not (workdir / "results" / "demo").exists()


@pytest.mark.parametrize("run_line", [None, "run: demo"])
def test_the_pages_folder_config_without_its_run_is_refused(workdir, run_line):
    """Without its `run` line (it inherits config.yaml's `demo`), or naming `demo`: refused at parse."""
    shown = page_config()
    lines = [line for line in with_root(shown, workdir / "images").splitlines() if not line.startswith("run:")]
    (workdir / "no-run.yaml").write_text("\n".join(([run_line] if run_line else []) + lines) + "\n")
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "no-run.yaml")
    assert result.returncode != 0
    said = result.stdout + result.stderr  # Snakemake prints a parse error on stdout
    assert "run: 'demo' is the default run's name" in said
    assert "add `run: <a name of your own>` to your config" in said
    assert not (workdir / "results" / "demo").exists()


def test_a_cap_is_in_the_log_skipped_csv_and_summary(workdir):
    """The page's config with a cap of 25 (and the tiny test settings: random weights, 32 px, three
    layers): summary.csv says 75 of 90 images, the dataset log and skipped.csv say which were left."""
    config = yaml.safe_load(with_root(page_config(), workdir / "images"))
    config["run"] = "capped"
    config["dataset"]["images_per_class"] = 25
    (workdir / "capped.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "results/capped/summary.csv", "--cores", "2",
                       "--configfile", "tests/configs/tiny.yaml", "capped.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    out = workdir / "results" / "capped"
    images = pd.read_csv(out / "dataset" / "images.csv")
    skipped = pd.read_csv(out / "dataset" / "skipped.csv")
    assert images.groupby("class_name").size().to_dict() == dict.fromkeys(CLASSES, 25)
    assert (skipped["reason"] == CAPPED_REASON).all()
    # each class's last five in sorted order
    assert sorted(Path(p).name for p in skipped["path"]) == sorted([f"{i:02d}.png" for i in range(25, 30)] * 3)
    log = (out / "logs" / "dataset.log").read_text()
    assert ("dataset.images_per_class = 25 leaves out 15 of 90 usable images (3 of 3 classes capped): "
            "the run analyses 75") in log
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3  # tiny.yaml's three layers
    assert (summary["n_images"] == 75).all() and (summary["n_images_listed"] == 90).all()
    assert "run capped analysed 75 of the 90 entries its dataset listed" in (out / "logs" / "summary.log").read_text()
