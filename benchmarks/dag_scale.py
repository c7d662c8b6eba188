"""Planning cost at ImageNet-train scale: `snakemake -n` on a 1.28M-image CSV dataset in 256 shards.

Fabricates a labels CSV of 1.28M rows (1000 classes; the image files need not exist for a
dry run, the dataset rule is only planned) and runs, in a copy of the workflow, VGG16 with
all 13 conv layers:

- `snakemake -n` (local planning: every rule's job), and
- `snakemake -n --profile profiles/slurm` (the cluster plan: tiny jobs grouped),

reporting the wall time of each dry run (start-up, parsing, DAG, printing the plan), the
number of rule jobs, and the number of jobs a run submits (group jobs count once).

    python benchmarks/dag_scale.py [--images 1281167] [--shards 256]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
COPY = ("Snakefile", "rules", "workflow", "config", "envs", "profiles")


def dry_run(workdir: Path, *extra: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", "-n", *extra, "--configfile", "scale.yaml"]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return seconds, out.stdout + out.stderr


def job_count(log: str) -> int:
    match = re.search(r"^total\s+(\d+)", log, flags=re.M)
    if not match:
        raise RuntimeError(f"no job total in:\n{log[-2000:]}")
    return int(match.group(1))


def submissions(log: str) -> int:
    """Jobs a cluster run submits: group jobs plus the jobs outside any group (not `all`)."""
    return len(re.findall(r"Group job \w+", log)) + len(re.findall(r"^rule (?!all:)\w+:", log, flags=re.M))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_281_167)
    parser.add_argument("--shards", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for item in COPY:
            (shutil.copytree if (REPO / item).is_dir() else shutil.copy)(REPO / item, work / item)
        data = work / "imagenet"
        data.mkdir()
        label = np.random.default_rng(0).integers(0, 1000, size=args.images)
        pd.DataFrame({"path": [f"train/{i:08d}.JPEG" for i in range(args.images)],
                      "label": label}).to_csv(data / "labels.csv", index=False)
        (work / "scale.yaml").write_text(
            "run: scale\n"
            "model: {arch: vgg16, weights: 'random:0', layers: conv}\n"
            f"dataset: {{format: csv, root: {data}, labels: labels.csv}}\n"
            f"extraction: {{image_size: 224, resize: 256, batch_size: 256, shards: {args.shards},"
            " device: cuda, precision: bf16, workers: 12}\n"
        )
        rows = []
        for name, extra in (("local", ()), ("profiles/slurm", ("--profile", "profiles/slurm"))):
            seconds, log = dry_run(work, *extra)
            # a dry run shows the rules' groups, but a local run ignores them: there, each job
            # but `all` would be a submission of its own
            submitted = submissions(log) if extra else job_count(log) - 1
            rows.append({"plan": name, "seconds": round(seconds, 1), "rule jobs": job_count(log),
                         "submitted jobs": submitted})
    print(f"{args.images} images in a CSV, {args.shards} shards, VGG16 13 layers")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
