"""The tiny multi-run config through the shipped SLURM profile on a real SLURM (.ci/slurm.sh up).

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
from conftest import controls_workflow
from test_slurm_profile import GROUPS, UNGROUPED, UNGROUPED_COMPARISON

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
           "--configfile", "tests/configs/tiny.yaml", "controls.yaml"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1500)


def _submitted(result: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """SLURM job ids by rule (or group), from the plugin's submission messages."""
    # logs: slurm_logs/rule_<rule>/<wildcards>/<id>.log, slurm_logs/group_<group>_<rules...>/<id>.log
    pattern = r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/(?:rule_(\w+)/|group_([a-z]+)_)"
    jobs: dict[str, list[str]] = {}
    for jobid, rule, group in re.findall(pattern, result.stdout + result.stderr):
        jobs.setdefault(rule or group, []).append(jobid)
    return jobs


#: the multi-run config of conftest.controls_workflow, every stage of each run built (runs_build:
#: all): two runs (VGG16 conv1_1 + conv2_1, AlexNet features-0), 2 shards each, a class hierarchy
#: (so the semantics checkpoints run), and the comparison under results/ctl. One workflow call
#: covers the single-run jobs and groups and the multi-run renaming and checkpoints.
LAYERS = {"vgg_random": ["conv1_1", "conv2_1"], "alex_random": ["features-0"]}


@pytest.fixture(scope="module")
def slurm_run(slurm, tmp_path_factory):
    workdir = controls_workflow(tmp_path_factory.mktemp("slurm"))
    start = time.time()
    result = _profile_run(workdir, "--config", "runs_build=all")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return workdir, result, time.time() - start


def test_jobs_went_through_sbatch(slurm_run):
    workdir, result, seconds = slurm_run
    jobs = _submitted(result)
    # alone: the jobs that read a whole layer or run the network, each with its own memory
    # request, and the comparison jobs that wait for the multi-run checkpoint
    alone = {name for name in jobs if name not in GROUPS}
    assert {name.split("__")[-1] for name in alone} <= UNGROUPED | UNGROUPED_COMPARISON, jobs
    for prefix, layers in LAYERS.items():
        assert len(jobs.get(f"{prefix}__extract", [])) == 2, jobs
        for rule in ("encode_topk", "evaluate_layer", "gallery_layer"):  # one per layer
            assert len(jobs.get(f"{prefix}__{rule}", [])) == len(layers), (rule, jobs)
    # the short jobs run grouped: set-up, analysis, figures, and each layer's patches + ICA
    for group in ("setup", "analysis", "figures"):
        assert jobs.get(group), jobs
    assert len(jobs.get("visualize", [])) == sum(map(len, LAYERS.values())), jobs
    for rule, ids in jobs.items():
        for jobid in ids:
            logs = list((workdir / ".snakemake" / "slurm_logs").glob(f"*/**/{jobid}.log"))
            assert logs, f"no SLURM log of job {jobid} ({rule})"
    assert (workdir / "results" / "ctl" / "tables" / "compare_semantics.csv").exists()
    for run in ("vgg-random", "alex-random"):
        assert (workdir / "results" / run / "gallery" / "index.html").exists()
    print(f"{sum(map(len, jobs.values()))} SLURM jobs, {seconds:.0f} s: {sorted(jobs)}")


def test_results_equal_a_local_run(slurm_run, controls_run):
    """What the local call of the same config built (runs_build: compare, so no pictures) is
    the same through SLURM: tables, stores and the comparison figures."""
    workdir, _, _ = slurm_run
    for run, layers in (("vgg-random", LAYERS["vgg_random"]), ("alex-random", LAYERS["alex_random"])):
        here, there = workdir / "results" / run, controls_run / "results" / run
        for table in ("metrics/all_layers.csv", "similarity/summary.csv", "summary.csv", "dataset/images.csv",
                      "semantics/summary.csv", "evaluation/all_layers.csv", "evaluation/summary.csv"):
            a, b = pd.read_csv(here / table), pd.read_csv(there / table)
            pd.testing.assert_frame_equal(a.drop(columns="path", errors="ignore"),
                                          b.drop(columns="path", errors="ignore"), obj=f"{run}/{table}")
        for layer in layers:
            ga = zarr.open_group(str(here / "topk" / f"{layer}.zarr"), mode="r")
            gb = zarr.open_group(str(there / "topk" / f"{layer}.zarr"), mode="r")
            for name in ("image_id", "value", "argmax"):
                np.testing.assert_array_equal(ga[name][...], gb[name][...], err_msg=f"{run}/topk/{layer}/{name}")
    for png in sorted((controls_run / "results" / "ctl" / "figures").glob("*.png")):
        assert (workdir / "results" / "ctl" / "figures" / png.name).read_bytes() == png.read_bytes(), png.name


def test_pictures_were_drawn_on_the_cluster(slurm_run):
    """The visualisation jobs (runs_build: all) wrote readable ICA pictures on the nodes."""
    workdir, _, _ = slurm_run
    for run, layers in (("vgg-random", LAYERS["vgg_random"]), ("alex-random", LAYERS["alex_random"])):
        for layer in layers:
            pictures = IcaReader(workdir / "results" / run / "ica" / f"{layer}.zarr").components("gray", slice(0, 4))
            assert pictures.shape[0] == 4 and np.isfinite(pictures).any(), (run, layer)


def test_second_call_submits_nothing(slurm_run):
    workdir, _, _ = slurm_run
    again = _profile_run(workdir, "--config", "runs_build=all")
    assert again.returncode == 0, again.stderr[-3000:]
    # on failure, what the second call did and why (Snakemake prints each job's reason)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-6000:]
    assert not _submitted(again)


def test_gpu_is_requested_only_on_a_cuda_device(slurm_run):
    """device: cuda -> the extract job asks for a GPU and lands on the GPU partition."""
    workdir, _, _ = slurm_run
    target = "results/vgg-random/activations/shard-000.zarr"
    shutil.rmtree(workdir / target)
    result = _profile_run(workdir, target, "--config", "extraction={'device': 'cuda'}")
    # no CUDA on this node (the GPU is fake): the job is scheduled, then the script stops
    assert result.returncode != 0
    [jobid] = _submitted(result)["vgg_random__extract"]
    log = next((workdir / ".snakemake" / "slurm_logs").glob(f"rule_vgg_random__extract/*/{jobid}.log")).read_text()
    assert "CUDA is not available" in log
    shown = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True).stdout
    assert "Partition=gpu" in shown and re.search(r"gres/gpu[=:]1|gpu:1", shown), shown
    restored = _profile_run(workdir, target)
    assert restored.returncode == 0, restored.stderr[-3000:]
    cpu_job = _submitted(restored)["vgg_random__extract"][0]
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
