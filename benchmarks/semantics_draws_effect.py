"""What drawing the semantics stage's nulls in content order changes (issue 29 item 2).

From a run's stores (activation shards: the images' ids and content keys; top-k; dataset
tables; ``semantics/hierarchy.csv``), every layer's semantics table and permutation null are
computed twice with `neurofacets.semantics.stage.semantics_and_null`: with the draws in content
order (`layer_semantics`, now) and in class-number order (before: the spread null's image sets
drawn among the images listed class by class, the permutations by `LabelLevel.permuted` over
``images.csv``). The class-number recompute is checked byte for byte against the run's stored
``semantics/{layer}.csv`` and ``semantics/null/{layer}.csv`` (written by the former code). Per
layer: neurons whose ``spread_p`` moves and the largest move, and every summary column that
moves, before -> after. No forward pass.

    python benchmarks/semantics_draws_effect.py results/<run> [--draws 1000 --permutations 20 --seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from neurofacets.cof import load_labels
from neurofacets.semantics.hierarchy import read_class_hierarchy
from neurofacets.semantics.stage import layer_semantics, semantics_and_null, semantics_summary
from neurofacets.store import write_csv
from neurofacets.topk import read_topk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--share", type=float, default=0.8)
    parser.add_argument("--max-concept-classes", type=float, default=0.5)
    parser.add_argument("--levels", type=int, nargs="+", default=[4, 6, 8])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run = args.run
    shards = sorted((run / "activations").glob("shard-*.zarr"))
    images_csv, classes_csv = run / "dataset" / "images.csv", run / "dataset" / "classes.csv"
    hierarchy_csv = run / "semantics" / "hierarchy.csv"
    layers = pd.read_csv(run / "model" / "layers.csv")["layer"].astype(str).tolist()
    labels = load_labels(images_csv, classes_csv)
    level = labels.level("class")
    hierarchy = read_class_hierarchy(hierarchy_csv)
    settings = dict(share=args.share, max_concept_classes=args.max_concept_classes, levels=args.levels,
                    draws=args.draws, seed=args.seed)
    print(f"{run}: {settings}, {args.permutations} permutations; class-number order -> content order")
    print("| layer | neurons with spread_p | spread_p moved | largest move | former code's outputs reproduced |")
    print("|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for layer in layers:
            topk = read_topk(run / "topk" / f"{layer}.zarr")
            in_class_order = np.sort(level.code_by_image_id[level.code_by_image_id >= 0])
            relabellings = (level.permuted(np.random.default_rng([args.seed, p])) for p in range(args.permutations))
            before, before_null = semantics_and_null(topk, labels, hierarchy, in_class_order, relabellings,
                                                     **settings)
            write_csv(tmp / f"before-{layer}.csv", before, float_format="%.6g")
            write_csv(tmp / f"before-null-{layer}.csv", before_null, float_format="%.6g")
            stored = {"": run / "semantics" / f"{layer}.csv", "null-": run / "semantics" / "null" / f"{layer}.csv"}
            same = all((tmp / f"before-{a}{layer}.csv").read_bytes() == path.read_bytes() for a, path in stored.items())
            after = layer_semantics(shards, run / "topk" / f"{layer}.zarr", images_csv, classes_csv, hierarchy_csv,
                                    permutations=args.permutations, out_csv=tmp / f"{layer}.csv",
                                    null_csv=tmp / f"null-{layer}.csv", **settings)
            a, b = before["spread_p"].to_numpy(), after["spread_p"].to_numpy()
            moved = ~((a == b) | (np.isnan(a) & np.isnan(b)))
            largest = float(np.nanmax(np.abs(a - b))) if np.isfinite(a).any() else float("nan")
            print(f"| {layer} | {int(np.isfinite(a).sum())} | {int(moved.sum())} | {largest:.4f} | {same} |")
        semantics_summary([tmp / f"{x}.csv" for x in layers], [tmp / f"null-{x}.csv" for x in layers],
                          run / "model" / "layers.csv", images_csv, classes_csv, hierarchy_csv, run="after",
                          out_summary=tmp / "summary.csv", out_concepts=tmp / "concepts.csv")
        # both as written (%.6g): a column moves when its written value does
        summary = pd.read_csv(tmp / "summary.csv").set_index("layer")
    stored = pd.read_csv(run / "semantics" / "summary.csv").set_index("layer")
    print("\n| summary column | layers moved | largest move (layer: before -> after) | mean abs move |")
    print("|---|---:|---|---:|")
    for column in summary.columns:
        if column == "run" or not pd.api.types.is_numeric_dtype(summary[column]):
            continue
        old, new = stored.loc[summary.index, column].to_numpy(float), summary[column].to_numpy(float)
        moved = ~((old == new) | (np.isnan(old) & np.isnan(new)))
        if not moved.any():
            continue
        diff = np.where(moved, np.abs(new - old), 0.0)
        at = int(np.argmax(diff))
        print(f"| {column} | {int(moved.sum())} | {summary.index[at]}: {old[at]:.4g} -> {new[at]:.4g} "
              f"| {diff[moved].mean():.4g} |")

if __name__ == "__main__":
    main()
