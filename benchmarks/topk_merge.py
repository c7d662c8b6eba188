"""encode_topk at N and 10N images: reading every image (before) vs merging shard candidates (after).

Fabricates activation shards of a fixed size (so 10N images are 10x the shards, as on a
real dataset), each with its top-k candidates (neurofacets.topk.write_shard_top_k), then
runs neurofacets.encode.encode_layer in a fresh process per case, side by side:

- before: the shards hold no candidates, so the layer is read whole (images x channels);
- after: the candidates are merged one shard at a time.

Each case reports the wall time, the process's peak resident memory (ru_maxrss, the
interpreter and its imports included) and the peak of Python-traced allocations
(tracemalloc: numpy arrays included). Both cases' top-k stores are checked to be equal.

    python benchmarks/topk_merge.py [--images 20000] [--channels 256] [--shard-size 5000] [--top-k 100]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from neurofacets.store import write_activation_shard
from neurofacets.topk import read_topk, write_shard_top_k

LAYER = "conv5_3"
N_CLASSES = 1000

MEASURE = """
import json, resource, sys, time, tracemalloc
from neurofacets.encode import encode_layer
args = json.loads(sys.argv[1])
tracemalloc.start()
start = time.perf_counter()
encode_layer(args["shards"], args["images"], args["classes"], args["layer"], args["top_k"],
             args["topk"], args["cof"])
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "traced_peak_mb": traced / 1e6}))
"""


def fabricate(root: Path, n_images: int, channels: int, shard_size: int, top_k: int) -> dict:
    """Shards of ``shard_size`` images with and without candidates, and the dataset tables."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, N_CLASSES, size=n_images)
    pd.DataFrame({"label": np.arange(N_CLASSES), "class_id": [f"n{c:05d}" for c in range(N_CLASSES)],
                  "class_name": [f"class {c}" for c in range(N_CLASSES)]}).to_csv(root / "classes.csv", index=False)
    pd.DataFrame({"image_id": np.arange(n_images), "path": [f"train/{i:08d}.JPEG" for i in range(n_images)],
                  "label": label, "class_name": [f"class {c}" for c in label],
                  "shard": np.arange(n_images) // shard_size}).to_csv(root / "images.csv", index=False)
    plain, with_cand = [], []
    for s, lo in enumerate(range(0, n_images, shard_size)):
        ids = np.arange(lo, min(lo + shard_size, n_images))
        # ReLU-like activations rounded to 2 decimals: many ties across shards
        mx = np.round(np.maximum(rng.normal(0, 1, size=(len(ids), channels)), 0), 2).astype(np.float32)
        am = rng.integers(0, 196, size=mx.shape).astype(np.int32)
        path = root / "plain" / f"shard-{s:03d}.zarr"
        write_activation_shard(path, ids, {LAYER: (mx, am, (14, 14))})
        plain.append(str(path))
        copy = root / "cand" / path.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copytree(path, copy)
        write_shard_top_k(zarr.open_group(str(copy), mode="r+"), top_k)
        with_cand.append(str(copy))
    return {"plain": plain, "cand": with_cand}


def run_case(root: Path, shards: list[str], top_k: int, name: str) -> dict:
    args = {"shards": shards, "images": str(root / "images.csv"), "classes": str(root / "classes.csv"),
            "layer": LAYER, "top_k": top_k, "topk": str(root / name / "topk.zarr"),
            "cof": str(root / name / "cof.zarr")}
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(args)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20000, help="N (10N is run too)")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=5000)
    parser.add_argument("--top-k", type=int, default=100)
    args = parser.parse_args()
    rows = []
    for n in (args.images, 10 * args.images):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            shards = fabricate(root, n, args.channels, args.shard_size, args.top_k)
            before = run_case(root, shards["plain"], args.top_k, "before")
            after = run_case(root, shards["cand"], args.top_k, "after")
            a, b = read_topk(root / "before" / "topk.zarr"), read_topk(root / "after" / "topk.zarr")
            assert np.array_equal(a.image_id, b.image_id) and np.array_equal(a.value, b.value)
            rows.append({"images": n, "shards": len(shards["plain"]),
                         "matrix_mb": n * args.channels * 4 / 1e6,
                         **{f"before_{k}": v for k, v in before.items()},
                         **{f"after_{k}": v for k, v in after.items()}})
    table = pd.DataFrame(rows)
    print(table.round(2).to_string(index=False))
    small, large = rows
    for case in ("before", "after"):
        print(f"{case}: 10N/N time {large[f'{case}_seconds'] / small[f'{case}_seconds']:.2f}, "
              f"peak RSS {large[f'{case}_peak_rss_mb'] / small[f'{case}_peak_rss_mb']:.2f}, "
              f"traced peak {large[f'{case}_traced_peak_mb'] / small[f'{case}_traced_peak_mb']:.2f}")
    print("top-k stores equal in every case: yes")


if __name__ == "__main__":
    main()
