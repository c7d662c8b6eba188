"""Benchmark of the encoding stage: analysis time and memory against reading one layer.

For one layer of 512 channels at two dataset sizes, activation shards are fabricated with
``write_activation_shard`` (post-ReLU-like values: about a third zeros, the rest gamma
distributed; 1000 classes; 4 shards). Measured side by side in this process:

- ``read``: :func:`neurofacets.store.read_layer` of the layer from all shards (what every
  layer job pays once);
- ``analysis``: top-k (k = 100) + CoF + per-neuron metrics + neuron similarity, i.e.
  ``select_top_k``, ``count_cof``, ``layer_metrics_table``, ``neuron_similarity``
  (wall time, and process CPU time, which is steadier on a shared machine);
- ``encode_layer``: the rule's whole function (read + top-k + CoF + writing both stores).

Times are the median of ``--repeats`` runs. Peak memory is traced with tracemalloc (numpy
reports its buffers to it) over read + analysis, and compared with the layer's float32
(images x channels) matrix; ``read_layer`` itself returns that matrix plus the int32 argmax
matrix of the same shape (2x).

Run: ``python benchmarks/analysis.py`` (prints a markdown table).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from neurofacets.cof import count_cof, load_labels
from neurofacets.encode import encode_layer
from neurofacets.metrics import layer_metrics_table
from neurofacets.similarity import neuron_similarity
from neurofacets.store import read_layer, write_activation_shard
from neurofacets.topk import select_top_k

LAYER = "conv5_3"
CHANNELS = 512
N_CLASSES = 1000
TOP_K = 100
N_SHARDS = 4


def fabricate(root: Path, n_images: int, seed: int = 0) -> tuple[list[Path], Path, Path]:
    """Shards, images.csv and classes.csv of a fake run with one layer."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, N_CLASSES, size=n_images)
    classes = pd.DataFrame({"label": np.arange(N_CLASSES), "class_id": [f"n{c:08d}" for c in range(N_CLASSES)],
                            "class_name": [f"class {c}" for c in range(N_CLASSES)]})
    images = pd.DataFrame({"image_id": np.arange(n_images), "path": "x.jpg", "label": label,
                           "class_name": classes["class_name"].to_numpy()[label],
                           "shard": np.arange(n_images) * N_SHARDS // n_images})
    images.to_csv(root / "images.csv", index=False)
    classes.to_csv(root / "classes.csv", index=False)
    shards = []
    for s in range(N_SHARDS):
        ids = np.flatnonzero(images["shard"].to_numpy() == s)
        mx = rng.gamma(1.5, 1.0, size=(len(ids), CHANNELS)).astype(np.float32)
        mx[rng.random(mx.shape) < 0.35] = 0.0
        am = rng.integers(0, 14 * 14, size=mx.shape).astype(np.int32)
        path = root / f"shard-{s:03d}.zarr"
        write_activation_shard(path, ids, {LAYER: (mx, am, (14, 14))})
        shards.append(path)
    return shards, root / "images.csv", root / "classes.csv"


def analyse(acts, labels) -> None:
    topk = select_top_k(LAYER, acts.image_id, acts.max, acts.argmax, TOP_K, acts.height, acts.width)
    cof = count_cof(topk, labels.level("class"))
    layer_metrics_table(LAYER, cof, labels.level("class").names)
    neuron_similarity(cof)


def measure(n_images: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards, images_csv, classes_csv = fabricate(root, n_images)
        labels = load_labels(images_csv, classes_csv)
        read_s, analysis_s, encode_s, read_cpu, analysis_cpu = [], [], [], [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            acts = read_layer(shards, LAYER)
            t1, c1 = time.perf_counter(), time.process_time()
            analyse(acts, labels)
            t2, c2 = time.perf_counter(), time.process_time()
            del acts
            encode_layer(shards, images_csv, classes_csv, LAYER, TOP_K, root / "topk.zarr", root / "cof.zarr")
            t3 = time.perf_counter()
            read_s.append(t1 - t0)
            analysis_s.append(t2 - t1)
            encode_s.append(t3 - t2)
            read_cpu.append(c1 - c0)
            analysis_cpu.append(c2 - c1)
        # Memory in a separate pass: tracemalloc slows allocation-heavy code.
        tracemalloc.start()
        acts = read_layer(shards, LAYER)
        _, read_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        held, _ = tracemalloc.get_traced_memory()
        analyse(acts, labels)
        _, analysis_peak = tracemalloc.get_traced_memory()
        del acts
        tracemalloc.reset_peak()
        encode_layer(shards, images_csv, classes_csv, LAYER, TOP_K, root / "topk.zarr", root / "cof.zarr")
        _, encode_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    matrix = n_images * CHANNELS * 4
    read, analysis, encode = (statistics.median(x) for x in (read_s, analysis_s, encode_s))
    return {
        "images": n_images,
        "matrix_mb": matrix / 1e6,
        "read_s": read,
        "analysis_s": analysis,
        "ratio": analysis / read,
        "cpu_ratio": statistics.median(analysis_cpu) / statistics.median(read_cpu),
        "encode_s": encode,
        "encode_ratio": encode / read,
        "read_peak": read_peak / matrix,
        "analysis_extra": (analysis_peak - held) / matrix,
        "analysis_extra_mb": (analysis_peak - held) / 1e6,
        "analysis_peak": analysis_peak / matrix,
        "encode_peak": encode_peak / matrix,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [measure(n, args.repeats) for n in args.sizes]
    print(f"One layer, {CHANNELS} channels, {N_CLASSES} classes, k = {TOP_K}, {N_SHARDS} shards; "
          f"median of {args.repeats}; peak memory in units of the layer's float32 matrix.\n")
    print("| images | matrix MB | read s | analysis s | analysis / read (wall) | analysis / read (CPU) | "
          "encode_layer s | encode_layer / read | peak: read_layer | peak: analysis beyond the read layer | "
          "peak: encode_layer |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['images']} | {r['matrix_mb']:.1f} | {r['read_s']:.3f} | {r['analysis_s']:.3f} | {r['ratio']:.2f} | "
              f"{r['cpu_ratio']:.2f} | {r['encode_s']:.3f} | {r['encode_ratio']:.2f} | {r['read_peak']:.2f}x | "
              f"{r['analysis_extra']:.2f}x ({r['analysis_extra_mb']:.0f} MB) | {r['encode_peak']:.2f}x |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
