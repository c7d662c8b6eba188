"""The tiny run through the shipped SLURM profile on a real SLURM (.ci/slurm.sh up).

Multi-run configs are not run on SLURM here (a second workflow call of about 15 minutes):
their rules keep the single-run groups (tests/test_slurm_profile.py, from the declared groups)
and their DAG runs locally (tests/test_controls_workflow.py).

Needs a running single-node SLURM (.ci/slurm.sh up: partitions cpu and gpu, a fake GPU, per-job
memory limits enforced by cgroups where the kernel allows) and the executor plugin
(pip install -e ".[slurm]"). Skipped, with the reason, where either is missing; .ci/run
provides both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from conftest import copy_workflow

from neurofacets.ica import IcaReader

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

SLURM_DIR = Path(os.environ.get("NF_SLURM_DIR", "/tmp/neurofacets-slurm"))
# The plugin checks job status every few seconds here instead of its 40 s default (a CLI
# setting of the plugin, not of the profile): 20 jobs of a few seconds would otherwise wait
# ten minutes for their status.
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "3")


def _slurm_ready() -> str | None:
    """Why the SLURM tests cannot run here, or None."""
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (sbatch not found): run .ci/slurm.sh up"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return 'the SLURM executor plugin is not installed: pip install -e ".[slurm]"'
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or not re.search(r"idle|mixed|allocated", probe.stdout):
        return f"SLURM is not running (sinfo: {probe.stderr.strip() or probe.stdout.strip()}): run .ci/slurm.sh up"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _slurm_ready()
    if reason:
        pytest.skip(reason)
    status = dict(line.split("=", 1) for line in (SLURM_DIR / "status").read_text().splitlines() if "=" in line)
    return status


def _profile_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    # targets and --config first: --configfile takes every following word as a file
    cmd = [sys.executable, "-m", "snakemake", *args, "--profile", "profiles/slurm", *FAST_STATUS,
           "--configfile", "tests/configs/tiny.yaml"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1500)


def _submitted(result: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """SLURM job ids by rule (or group), from the plugin's submission messages."""
    # logs: slurm_logs/rule_<rule>/<wildcards>/<id>.log, slurm_logs/group_<group>_<rules...>/<id>.log
    pattern = r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/(?:rule_(\w+)/|group_([a-z]+)_)"
    jobs: dict[str, list[str]] = {}
    for jobid, rule, group in re.findall(pattern, result.stdout + result.stderr):
        jobs.setdefault(rule or group, []).append(jobid)
    return jobs


@pytest.fixture(scope="module")
def slurm_run(slurm, tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm"))
    start = time.time()
    result = _profile_run(workdir)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return workdir, result, time.time() - start


def test_jobs_went_through_sbatch(slurm_run):
    workdir, result, seconds = slurm_run
    jobs = _submitted(result)
    assert len(jobs.get("extract", [])) == 2 and len(jobs.get("encode_topk", [])) == 3, jobs
    # short jobs run grouped: one cluster job for the set-up, one for the analysis, one for
    # the figures and gallery, one per layer for patches + ICA
    for group in ("setup", "analysis", "figures"):
        assert len(jobs.get(group, [])) == 1, jobs
    assert len(jobs.get("visualize", [])) == 3, jobs
    assert len(jobs.get("gallery_layer", [])) == 3, jobs  # one per layer (profiles/slurm: why)
    assert len(jobs.get("evaluate_layer", [])) == 3, jobs  # reads a whole layer: its own memory request
    assert len(jobs.get("bootstrap_layer", [])) == 3, jobs  # the same
    assert sum(map(len, jobs.values())) == 20, jobs
    for rule, ids in jobs.items():
        for jobid in ids:
            logs = list((workdir / ".snakemake" / "slurm_logs").glob(f"*/**/{jobid}.log"))
            assert logs, f"no SLURM log of job {jobid} ({rule})"
    print(f"{sum(map(len, jobs.values()))} SLURM jobs, {seconds:.0f} s")


def test_results_equal_a_local_run(slurm_run, tiny_run):
    workdir, _, _ = slurm_run
    here, there = workdir / "results" / "tiny", tiny_run / "results" / "tiny"
    for table in ("metrics/all_layers.csv", "similarity/summary.csv", "null/summary.csv", "rsa/rsa.csv",
                  "summary.csv", "tables/table2_sf_neurons.csv", "dataset/images.csv"):
        a, b = pd.read_csv(here / table), pd.read_csv(there / table)
        pd.testing.assert_frame_equal(a.drop(columns="path", errors="ignore"),
                                      b.drop(columns="path", errors="ignore"), obj=table)
    for layer in ("conv1_1", "conv2_2", "conv3_1"):
        for store, arrays in (("topk", ("image_id", "value", "argmax")), ("ica", ("unmixing", "status", "n_counted"))):
            ga = zarr.open_group(str(here / store / f"{layer}.zarr"), mode="r")
            gb = zarr.open_group(str(there / store / f"{layer}.zarr"), mode="r")
            for name in arrays:
                np.testing.assert_array_equal(ga[name][...], gb[name][...], err_msg=f"{store}/{layer}/{name}")
        pictures_a = IcaReader(here / "ica" / f"{layer}.zarr").components("gray", slice(0, 4))
        pictures_b = IcaReader(there / "ica" / f"{layer}.zarr").components("gray", slice(0, 4))
        np.testing.assert_array_equal(pictures_a, pictures_b, err_msg=f"ica/{layer} pictures")
    for png in sorted((there / "figures").glob("*.png")):
        assert (here / "figures" / png.name).read_bytes() == png.read_bytes(), png.name


def test_second_call_submits_nothing(slurm_run):
    workdir, _, _ = slurm_run
    again = _profile_run(workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-6000:]
    assert not _submitted(again)


def test_gpu_is_requested_only_on_a_cuda_device(slurm_run):
    """device: cuda -> the extract job asks for a GPU and lands on the GPU partition."""
    workdir, _, _ = slurm_run
    target = "results/tiny/activations/shard-000.zarr"
    shutil.rmtree(workdir / target)
    result = _profile_run(workdir, target, "--config", "extraction={'device': 'cuda'}")
    # no CUDA on this node (the GPU is fake): the job is scheduled, then the script stops
    assert result.returncode != 0
    [jobid] = _submitted(result)["extract"]
    log = next((workdir / ".snakemake" / "slurm_logs").glob(f"rule_extract/*/{jobid}.log")).read_text()
    assert "CUDA is not available" in log
    shown = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True).stdout
    assert "Partition=gpu" in shown and re.search(r"gres/gpu[=:]1|gpu:1", shown), shown
    restored = _profile_run(workdir, target)
    assert restored.returncode == 0, restored.stderr[-3000:]
    cpu_job = _submitted(restored)["extract"][0]
    shown = subprocess.run(["scontrol", "show", "job", cpu_job], capture_output=True, text=True).stdout
    assert "Partition=cpu" in shown and "gpu" not in shown.split("TRES=")[-1].split("\n")[0], shown


def test_memory_requests_are_enforced(slurm, slurm_run):
    """Each job ran inside a cgroup limited to its --mem; going over it kills the job."""
    if slurm.get("cgroup_enforced") != "yes":
        pytest.skip(f"memory is not enforced by cgroups on this machine: {slurm.get('reason')}")
    log = (SLURM_DIR / "log" / "slurmd.log").read_text()
    limits = re.findall(r"_memcg_initialize: job: alloc=(\d+)MB mem.limit=(\d+)MB", log)
    assert limits and all(alloc == limit for alloc, limit in limits)
    over = subprocess.run(
        ["sbatch", "--parsable", "--wait", "-p", "cpu", "--mem", "100", "-o", "/dev/null", "--wrap",
         "python3 -c 'b = bytearray(400 * 2**20); b[::4096] = b\"x\" * len(b[::4096])'"],
        capture_output=True, text=True, timeout=120,
    )
    jobid = over.stdout.strip().split(";")[0]
    state = subprocess.run(["squeue", "-h", "--states=all", "-j", jobid, "-o", "%T"],
                           capture_output=True, text=True).stdout.strip()
    assert over.returncode != 0 and state == "OUT_OF_MEMORY", (over.stderr, state)
