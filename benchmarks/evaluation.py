"""The evaluation stage next to encode_topk on the same layer, at N and 10N images.

Fabricates activation shards of a fixed size (10N images are 10x the shards) with their top-k
candidates, then runs, each in a fresh process, side by side on the same layer:

- ``encode_topk``: :func:`neurofacets.encode.encode_layer` (merges the shards' candidates);
- ``evaluate``: :func:`neurofacets.evaluation.evaluate_layer` (reads the layer once from every
  shard, splits it, selects each half's top-k, scores the explanations with their chance
  draws, runs the label test with ``evaluation.label_draws`` draws and the selectivity
  permutation test with true and permuted labels);
- ``evaluate_1_draw``: the same with one draw of the label test: the difference is the cost of
  the label draws (``auto``: 40 per neuron of the layer);
- ``bootstrap``: :func:`neurofacets.bootstrap.bootstrap_layer` with ``--resamples`` resamples
  (``analysis.bootstrap``; the intervals' per-layer job: reads the layer a block of neurons at a
  time, recomputes every resample's top-k sets, CoF rows and metrics, whole run and halves, and
  scores each resample's labels on its held-out half: the interval of ``frac_label_holds``);
- ``bootstrap_without_label_test``: the same with the label test replaced by NaNs: the
  difference is the cost of that interval (`neurofacets.bootstrap.weighted_label_test`).

Each case reports the wall time, the process's peak resident memory (ru_maxrss, interpreter
and imports included) and the peak of Python-traced allocations (tracemalloc). Planted
neurons (each firing on one class) check that the evaluation finds what it should.

    python benchmarks/evaluation.py [--images 5000] [--channels 256] [--classes 200] [--resamples 200]
                                    [--bootstrap-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from neurofacets.job_resources import EVALUATE_BYTES_PER_ENTRY, bootstrap_mem_mb
from neurofacets.store import write_activation_shard
from neurofacets.topk import write_shard_top_k

LAYER = "conv5_3"
SHARD_SIZE = 5000

MEASURE = """
import json, resource, sys, time, tracemalloc
args = json.loads(sys.argv[1])
tracemalloc.start()
start = time.perf_counter()
if args["case"] == "encode_topk":
    from neurofacets.encode import encode_layer
    encode_layer(args["shards"], args["images"], args["classes"], args["layer"], args["top_k"], args["topk"], args["cof"])
elif args["case"].startswith("bootstrap"):
    from neurofacets import bootstrap
    from neurofacets.bootstrap import bootstrap_layer
    if args["case"] == "bootstrap_without_label_test":
        import numpy as np
        def no_label_test(values, codes, counts, members, block_entries=0):
            nan = np.full((len(counts), values.shape[1]), np.nan)
            return nan, nan
        bootstrap.weighted_label_test = no_label_test
    bootstrap_layer(args["shards"], args["images"], args["classes"], args["layer"], level="class",
                    top_k=args["top_k"], seed=0, split_seed=0, resamples=args["resamples"], out=args["bootstrap"])
else:
    from neurofacets.evaluation import evaluate_layer
    evaluate_layer(args["shards"], args["topk"], args["images"], args["classes"], None, level="class",
                   top_k=args["top_k"], seed=0, chance_draws=args["chance_draws"], permutations=args["permutations"],
                   label_draws=1 if args["case"] == "evaluate_1_draw" else args["label_draws"],
                   share=0.8, max_concept_classes=0.5, out_csv=args["out"])
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "traced_peak_mb": traced / 1e6}))
"""


def fabricate(root: Path, n_images: int, channels: int, n_classes: int, top_k: int) -> list[str]:
    """Shards with candidates and the dataset tables; neuron c < 10 fires on class c."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, n_classes, size=n_images)
    pd.DataFrame({"label": np.arange(n_classes), "class_id": [f"n{c:05d}" for c in range(n_classes)],
                  "class_name": [f"class {c}" for c in range(n_classes)]}).to_csv(root / "classes.csv", index=False)
    pd.DataFrame({"image_id": np.arange(n_images), "path": [f"train/{i:08d}.JPEG" for i in range(n_images)],
                  "label": label}).to_csv(root / "images.csv", index=False)
    shards = []
    for s, lo in enumerate(range(0, n_images, SHARD_SIZE)):
        ids = np.arange(lo, min(lo + SHARD_SIZE, n_images))
        mx = np.round(np.maximum(rng.normal(0, 1, size=(len(ids), channels)), 0), 2).astype(np.float32)
        for c in range(min(10, channels)):
            mx[label[ids] == c, c] += 3
        am = rng.integers(0, 196, size=mx.shape).astype(np.int32)
        path = root / f"shard-{s:03d}.zarr"
        write_activation_shard(path, ids, {LAYER: (mx, am, (14, 14))})
        write_shard_top_k(zarr.open_group(str(path), mode="r+"), top_k)
        shards.append(str(path))
    return shards


def run_case(case: str, args: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps({**args, "case": case})], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000, help="N (10N is run too)")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--chance-draws", type=int, default=20)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--label-draws", default="auto", help="auto or a number")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (analysis.bootstrap)")
    parser.add_argument("--bootstrap-only", action="store_true", help="leave out the evaluate cases")
    args = parser.parse_args()
    label_draws = args.label_draws if args.label_draws == "auto" else int(args.label_draws)
    rows = []
    for n in (args.images, 10 * args.images):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            shards = fabricate(root, n, args.channels, args.classes, args.top_k)
            case_args = {"shards": shards, "images": str(root / "images.csv"), "classes": str(root / "classes.csv"),
                         "layer": LAYER, "top_k": args.top_k, "topk": str(root / "topk.zarr"),
                         "cof": str(root / "cof.zarr"), "out": str(root / "evaluation.csv"),
                         "chance_draws": args.chance_draws, "permutations": args.permutations,
                         "label_draws": label_draws, "resamples": args.resamples,
                         "bootstrap": str(root / "bootstrap.zarr")}
            encode = run_case("encode_topk", case_args)
            boot = run_case("bootstrap", case_args)
            no_labels = run_case("bootstrap_without_label_test", case_args)
            row = {"images": n, "matrix_mb": n * args.channels * 4 / 1e6,
                   **{f"encode_topk_{k}": v for k, v in encode.items()},
                   **{f"bootstrap_{k}": v for k, v in boot.items()},
                   "bootstrap_us_per_image": boot["seconds"] / n * 1e6,
                   "bootstrap_request_mb": bootstrap_mem_mb(shards, LAYER, args.resamples),
                   "bootstrap_label_test_seconds": boot["seconds"] - no_labels["seconds"],
                   "bootstrap_label_test_us_per_image": (boot["seconds"] - no_labels["seconds"]) / n * 1e6,
                   "bootstrap_without_label_test_seconds": no_labels["seconds"],
                   "bootstrap_without_label_test_peak_rss_mb": no_labels["peak_rss_mb"]}
            if args.bootstrap_only:
                rows.append(row)
                continue
            one_draw = run_case("evaluate_1_draw", case_args)
            evaluate = run_case("evaluate", case_args)
            table = pd.read_csv(root / "evaluation.csv")
            planted = table.iloc[:10]
            rows.append({**row, "request_data_mb": n * args.channels * EVALUATE_BYTES_PER_ENTRY / 1e6,
                         **{f"evaluate_{k}": v for k, v in evaluate.items()},
                         "label_draws_seconds": evaluate["seconds"] - one_draw["seconds"],
                         "label_draws_us_per_image": (evaluate["seconds"] - one_draw["seconds"]) / n * 1e6,
                         "planted_auroc_min": planted["auroc"].min(),
                         "planted_label_holds": int(planted["label_holds"].sum()),
                         "others_label_holds": float(table["label_holds"].iloc[10:].mean()),
                         "planted_selective": int((planted["selectivity_q"] < 0.05).sum()),
                         "others_selective_permuted": float((table["selectivity_q_permuted"] < 0.05).mean())})
    table = pd.DataFrame(rows)
    print(table.round(3).T.to_string(header=False))
    small, large = rows
    if not args.bootstrap_only:
        for n, row in ((args.images, small), (10 * args.images, large)):
            print(f"N = {n}: evaluate / encode_topk time {row['evaluate_seconds'] / row['encode_topk_seconds']:.1f}, "
                  f"peak RSS {row['evaluate_peak_rss_mb'] / row['encode_topk_peak_rss_mb']:.2f}")
        print(f"label draws: 10N/N time {large['label_draws_seconds'] / small['label_draws_seconds']:.2f} "
              f"(flat per image: 10); per image {small['label_draws_us_per_image']:.0f} us at N, "
              f"{large['label_draws_us_per_image']:.0f} us at 10N")
    for n, row in ((args.images, small), (10 * args.images, large)):
        print(f"N = {n}: bootstrap ({args.resamples} resamples) / encode_topk time "
              f"{row['bootstrap_seconds'] / row['encode_topk_seconds']:.1f}, per image {row['bootstrap_us_per_image']:.0f} us, "
              f"peak RSS {row['bootstrap_peak_rss_mb']:.0f} MB (request {row['bootstrap_request_mb']} MB); "
              f"its label test {row['bootstrap_label_test_seconds']:.1f} s "
              f"({row['bootstrap_seconds'] / row['bootstrap_without_label_test_seconds']:.2f}x the bootstrap without it, "
              f"{row['bootstrap_label_test_seconds'] / row['encode_topk_seconds']:.2f}x encode_topk), "
              f"{row['bootstrap_label_test_us_per_image']:.0f} us per image")
    print(f"bootstrap label test: 10N/N time "
          f"{large['bootstrap_label_test_seconds'] / small['bootstrap_label_test_seconds']:.2f} (flat per image: 10)")
    for case in ("encode_topk", "bootstrap") if args.bootstrap_only else ("encode_topk", "evaluate", "bootstrap"):
        print(f"{case}: 10N/N time {large[f'{case}_seconds'] / small[f'{case}_seconds']:.2f}, "
              f"peak RSS {large[f'{case}_peak_rss_mb'] / small[f'{case}_peak_rss_mb']:.2f}, "
              f"traced peak {large[f'{case}_traced_peak_mb'] / small[f'{case}_traced_peak_mb']:.2f}")


if __name__ == "__main__":
    main()
