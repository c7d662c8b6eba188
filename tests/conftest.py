"""Shared fixtures: where the real photos live, tiny generated images."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
#: The site's own-model example (``python:labnet:make_labnet``), a tiny ViT the tests also run.
LABNET = REPO / "config" / "examples" / "labnet.py"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real photos not available: {path} is absent (outside this workplace)")
    return path


@pytest.fixture(scope="session")
def random_vgg16_weights(tmp_path_factory) -> Path:
    """VGG16 with ``random:0`` weights (no download), prepared once per session."""
    from neurofacets.weights import prepare_weights

    path = tmp_path_factory.mktemp("weights") / "vgg16-random0.pt"
    prepare_weights("random:0", "vgg16", path)
    return path


@pytest.fixture
def rgb_image(tmp_path: Path):
    """Factory: write a random RGB image of the given size and format, return its path."""

    def make(name: str = "img.png", size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        path = tmp_path / name
        Image.fromarray(arr).save(path)
        return path

    return make


WORKFLOW_FILES = ("Snakefile", "rules", "workflow", "config", "envs", "profiles", "tests/configs")


def copy_workflow(workdir: Path) -> Path:
    """A copy of the workflow (rules, scripts, configs, profiles) in ``workdir``."""
    for item in WORKFLOW_FILES:
        src, dst = REPO / item, workdir / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return workdir


def three_class_workflow(workdir: Path) -> Path:
    """:func:`copy_workflow` into ``workdir`` with ``probes3/``: 3 probe classes x 2 images of 32 px
    (the model-family tests' dataset, ``dataset: {format: folder, root: probes3}``)."""
    from neurofacets.probes import write_probe_dataset

    copy_workflow(workdir)
    write_probe_dataset(workdir / "probes", 2, 32, 0)
    for folder in sorted(p for p in (workdir / "probes").iterdir() if p.is_dir())[:3]:
        shutil.copytree(folder, workdir / "probes3" / folder.name)
    return workdir


# 12 WordNet ids, one per probe class: toy dogs, cats, cars, fruit, a volcano
WNIDS = ["n02085620", "n02085782", "n02085936", "n02086079", "n02123045", "n02123159",
         "n02814533", "n03100240", "n04285008", "n07747607", "n07753592", "n09472597"]
#: A tiny multi-run config (on top of tests/configs/tiny.yaml): two untrained networks on
#: probe images whose class folders are WordNet ids, so the semantics stage runs.
CONTROLS_CONFIG = {
    "run": "ctl",
    "dataset": {"format": "folder", "root": "wnid-data", "images_per_class": 3},
    "analysis": {"top_k": 6},
    "semantics": {"levels": [6], "spread_draws": 50, "permutations": 2},
    "runs": [
        {"run": "vgg-random", "model": {"arch": "vgg16", "weights": "random:0", "layers": ["conv1_1", "conv2_1"]}},
        {"run": "alex-random", "model": {"arch": "alexnet", "weights": "random:0", "layers": ["features-0"]},
         "extraction": {"image_size": 64, "resize": 64}},
    ],
    "runs_build": "compare",
}


def controls_workflow(workdir: Path) -> Path:
    """A copy of the workflow with ``controls.yaml`` (:data:`CONTROLS_CONFIG`) and its data."""
    import yaml

    from neurofacets.probes import write_probe_dataset

    copy_workflow(workdir)
    probes = workdir / "probes"
    write_probe_dataset(probes, 3, 32, 0)
    for wnid, folder in zip(WNIDS, sorted(p for p in probes.iterdir() if p.is_dir())):
        shutil.copytree(folder, workdir / "wnid-data" / wnid)
    (workdir / "controls.yaml").write_text(yaml.safe_dump(CONTROLS_CONFIG))
    return workdir


def shipped_controls_workflow(workdir: Path) -> tuple[Path, Path]:
    """A copy of the workflow ready to parse config/controls.yaml or config/families.yaml on
    Tiny-ImageNet's validation photos: ``(workdir, dataset root)``; skips the test where the
    photos are absent."""
    root = shared_data("tiny-imagenet-val")
    if not root.exists():
        pytest.skip(f"{root} is absent: the controls config needs a dataset folder to parse")
    copy_workflow(workdir)
    subprocess.run([sys.executable, "-m", "neurofacets.tiny_imagenet", str(root),
                    str(workdir / "resources" / "tiny-imagenet-val.csv")], check=True, capture_output=True)
    return workdir, root


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The tiny config run locally on 2 cores in ``workdir``."""
    # targets and --config first: --configfile takes every following word as a file
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--configfile",
           "tests/configs/tiny.yaml"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1200)


def controls_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The multi-run config of :func:`controls_workflow` run locally on 2 cores in ``workdir``."""
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--configfile",
           "tests/configs/tiny.yaml", "controls.yaml"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="session")
def controls_run(tmp_path_factory):
    """:func:`controls_workflow` run once locally to completion (the multi-run tests, and the
    SLURM run of the same config compares its results with it)."""
    workdir = controls_workflow(tmp_path_factory.mktemp("controls"))
    result = controls_snakemake(workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A copy of the workflow, run once locally to completion (shared by the e2e tests)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


#: ``python -c HIDE_TORCH <snakemake args>``: Snakemake with torch and torchvision made unimportable,
#: to show that parsing the workflow (and the checks at parse) need neither.
HIDE_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} imported while parsing the workflow")
sys.meta_path.insert(0, NoTorch())
from snakemake.cli import main
main(sys.argv[1:])
"""
