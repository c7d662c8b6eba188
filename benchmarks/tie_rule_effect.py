"""What the content-key tie rule changes: one run's activations, both tie rules, side by side.

From a run's activation shards (every image's per-neuron maximum and content key), every
layer's top-k sets are selected twice: ties broken by the image's content key (the rule now,
docs/methods.md) and by image id (the former rule, which follows the class order). Per layer:
neurons whose top-k set (as a set of images) differs, neurons whose MF/SF facet or MF degree
differs (all of it, and among the images with activation > 0, the only ones that count in the
CoF: ties at 0 merely reorder silent images), and the layer's mean MF degree (finite values) under each rule. No forward pass.

    python benchmarks/tie_rule_effect.py results/<run> [--k 100]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from neurofacets.cof import count_cof, load_labels
from neurofacets.metrics import layer_metrics_table
from neurofacets.store import read_layer
from neurofacets.topk import select_top_k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()
    shards = sorted((args.run / "activations").glob("shard-*.zarr"))
    labels = load_labels(args.run / "dataset" / "images.csv", args.run / "dataset" / "classes.csv")
    level = labels.level("class")
    layers = pd.read_csv(args.run / "metrics" / "all_layers.csv")["layer"].unique().tolist()
    print(f"{args.run}: k = {args.k}; top-k sets under the content-key tie rule vs the image-id rule")
    print("| layer | neurons | top-k sets changed | of them in the counted images (> 0) | MF degree changed "
          "| mean MF (id ties) | mean MF (content key) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for layer in layers:
        acts = read_layer(shards, layer)
        by_key = select_top_k(layer, acts.image_id, acts.max, acts.argmax, args.k, acts.height, acts.width,
                              acts.content_key)
        by_id = select_top_k(layer, acts.image_id, acts.max, acts.argmax, args.k, acts.height, acts.width)
        changed = sum(set(a) != set(b) for a, b in zip(by_key.image_id.tolist(), by_id.image_id.tolist()))
        # the entries that count in the CoF (activation > 0); ties at 0 only reorder silent images
        counted = sum(set(a[c]) != set(b[d]) for a, b, c, d in zip(by_key.image_id, by_id.image_id,
                                                                    by_key.counted, by_id.counted))
        names = [str(n) for n in level.names]
        mf_key = layer_metrics_table(layer, count_cof(by_key, level), names)["mf"].to_numpy()
        mf_id = layer_metrics_table(layer, count_cof(by_id, level), names)["mf"].to_numpy()
        moved = int(np.sum(~((mf_key == mf_id) | (np.isnan(mf_key) & np.isnan(mf_id)))))

        def mean(mf: np.ndarray) -> float:
            return float(np.mean(mf[np.isfinite(mf)])) if np.isfinite(mf).any() else float("nan")

        print(f"| {layer} | {len(mf_key)} | {changed} | {counted} | {moved} | {mean(mf_id):.6f} | "
              f"{mean(mf_key):.6f} |")


if __name__ == "__main__":
    main()
