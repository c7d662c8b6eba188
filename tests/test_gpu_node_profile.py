"""profiles/gpu-node with config/imagenet-val.yaml plans the run (dry run on a stand-in root)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def test_gpu_node_profile_plans_imagenet_val(tmp_path):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    for item in ("Snakefile", "rules", "workflow", "config", "envs", "profiles"):
        (shutil.copytree if (REPO / item).is_dir() else shutil.copy)(REPO / item, workdir / item)
    root = tmp_path / "val"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 30), (60 * i, 0, 0)).save(root / f"ILSVRC2012_val_{i:08d}.JPEG")
    (root / "val_labels.csv").write_text(
        "path,label\n" + "".join(f"ILSVRC2012_val_{i:08d}.JPEG,{i % 2}\n" for i in range(4)))
    config = yaml.safe_load((REPO / "config" / "imagenet-val.yaml").read_text())
    config["dataset"]["root"] = str(root)
    (workdir / "val.yaml").write_text(yaml.safe_dump(config))
    profile = yaml.safe_load((REPO / "profiles" / "gpu-node" / "config.yaml").read_text())
    assert profile["set-threads"]["extract"] > config["extraction"]["workers"]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/gpu-node", "--configfile", "val.yaml"],
        cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    assert int(jobs["extract"]) == config["extraction"]["shards"]
