"""benchmarks/gpu_check.py: runs in CPU mode on a handful of real photos; its checks can fail."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from neurofacets.agreement import LayerAgreement
from neurofacets.decode import TOLERANCE_LEVELS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_check_runs_on_the_cpu(tmp_path):
    from conftest import shared_data

    photos = shared_data("imagenet-sample")
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--images", "6", "--size", "32",
         "--resize", "36", "--k", "3", "--batch", "3", "--workers", "0", "--threads", "2",
         "--weights", "random:0", "--photos", str(photos), "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "checks: all passed" in proc.stdout and "ImageNet train" in proc.stdout
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["images"] == 6 and result["failed"] == []
    runs = {(r["precision"], r["decode"]): r for r in result["runs"]}
    assert set(runs) == {(p, d) for p in ("fp32", "bf16", "fp16") for d in ("pil", "torchvision")}
    reference = runs[("fp32", "pil")]["layers"]
    assert len(reference) == 13
    assert all(a["topk_identical"] == 1 and a["max_rel_diff"] == 0 for a in reference)
    for run in runs.values():
        assert run["images_per_s"] > 0 and 0 <= run["wait_seconds"] <= run["seconds"]
        assert run["gpu_busy"] is None and run["skipped"] == []
        assert all(0 <= a["topk_identical"] <= 1 for a in run["layers"])
    # bf16 really ran in lower precision: its values are not the fp32 ones
    assert max(a["max_rel_diff"] for a in runs[("bf16", "pil")]["layers"]) > 1e-4
    assert result["pixels"]["pil"]["max_abs"] == 0
    assert result["pixels"]["torchvision"]["max_abs"] <= TOLERANCE_LEVELS


def _layers(identical: float, rel: float = 0.0) -> list[LayerAgreement]:
    return [LayerAgreement("conv1_1", rel, 1.0, identical, identical, 0.5, 0.5)]


def test_checks_fail_where_they_should():
    gc = _module()
    ids = np.arange(4)

    def run(precision, decode, image_id=ids, skipped=()):
        return gc.Run(precision, decode, "cuda", 1, 4, True, gc.Timing(4, 1.0, 0.1, None), image_id,
                      list(skipped), {})

    reference = run("fp32", "pil")
    ok_pixels = {"pil": {"max_abs": 0}, "torchvision": {"max_abs": TOLERANCE_LEVELS}}
    runs = [run("fp32", "pil"), run("bf16", "pil"), run("fp32", "torchvision")]
    agreements = {("fp32", "pil", 1, True): _layers(1.0), ("bf16", "pil", 1, True): _layers(0.8),
                  ("fp32", "torchvision", 1, True): _layers(0.97)}
    assert gc.DEFAULT_PRECISION == "fp32"
    assert gc.checks(reference, runs, agreements, ok_pixels) == []  # bf16 is not the default
    failed = gc.checks(reference, runs, {**agreements, ("fp32", "pil", 1, True): _layers(0.98)}, ok_pixels)
    assert len(failed) == 1 and "fp32 differs" in failed[0]
    failed = gc.checks(reference, runs, {**agreements, ("fp32", "pil", 1, True): _layers(1.0, rel=0.01)}, ok_pixels)
    assert len(failed) == 1 and "max rel. 1.00e-02" in failed[0]
    failed = gc.checks(reference, [run("fp32", "pil", skipped=[(3, "truncated")])], agreements, ok_pixels)
    assert len(failed) == 1 and "skips other images" in failed[0]
    failed = gc.checks(reference, runs, agreements, {"torchvision": {"max_abs": TOLERANCE_LEVELS + 1},
                                                     "nvjpeg": {"max_abs": 9}})
    assert len(failed) == 1 and "decode torchvision" in failed[0]  # nvjpeg's is reported only


def test_timing_only_times_a_stream_per_worker_count(tmp_path):
    """--timing-only: no reference, one row per (precision, decode, workers), each timed on
    --stream images rounded up to whole batches."""
    from conftest import shared_data

    photos = shared_data("imagenet-sample")
    out = tmp_path / "timing.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--images", "3", "--size", "32",
         "--resize", "36", "--batch", "2", "--workers", "0,1", "--stream", "5", "--threads", "2",
         "--precisions", "fp32", "--decodes", "pil", "--weights", "random:0", "--timing-only",
         "--photos", str(photos), "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "### Rates (6 images per pass)" in proc.stdout and "checks:" not in proc.stdout
    runs = json.loads(out.read_text())["runs"]
    assert [(r["workers"], r["timed_images"], r["layers"]) for r in runs] == [(0, 6, []), (1, 6, [])]
    assert all(r["autotune"] is False and r["start_seconds"] > 0 for r in runs)  # the default
    assert all(r["images_per_s"] > 0 and r["gpu_busy"] is None for r in runs)


def test_stream_cycles_the_sample():
    gc = _module()
    import pandas as pd

    frame = pd.DataFrame({"path": ["a", "b", "c"], "code": [0, 1, 0]}, index=[7, 8, 9])
    stream = gc.stream_of(frame, 7)
    assert list(stream.index) == list(range(7))
    assert list(stream["path"]) == ["a", "b", "c", "a", "b", "c", "a"]
