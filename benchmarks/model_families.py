"""Extraction speed and memory of a ViT next to a CNN on the same photos, one run, as ratios.

Each network runs the extraction stage's own code (DataLoader + PIL decode + hooked forward,
max/argmax reduced on the device) over the same real photos in its own process, so the peak
resident memory (``ru_maxrss``) is that network's alone:

- ``vgg16``, ``model.layers: conv`` (13 convolutions, the paper's network);
- ``vit_b_16``, ``model.layers: all`` (the patch embedding and the 12 x 3072 MLP neurons).

Random weights (the speed and memory do not depend on the values), fp32, batch 16, 224 px.

    python benchmarks/model_families.py [--images 64] [--device cpu|cuda] [--threads 2]
    python benchmarks/model_families.py --arch timm:deit_tiny_patch16_224 --layers mlp  # add a row
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample"
DEFAULT_MODELS = [("vgg16", "conv"), ("vit_b_16", "all")]


def one(arch: str, layers: str, images: int, device: str, threads: int, batch: int) -> dict:
    """Extract ``images`` photos with ``arch``; images/s (after one warm-up batch) and peak RSS."""
    import pandas as pd
    import torch

    from neurofacets.extract import iterate_activations, make_loader, resolve_device
    from neurofacets.models import build_model, select_layers

    torch.set_num_threads(threads)
    table = pd.read_csv(PHOTOS / "images.csv")
    table = table.iloc[:: max(1, len(table) // images)].head(images).reset_index(drop=True)
    paths = [str(PHOTOS / p) for p in table["path"]]
    dev = resolve_device(device)
    model = build_model(arch, seed=0)
    chosen = select_layers(model, arch, layers)
    warm = make_loader(range(batch), paths[:batch], 224, 256, batch, 0)
    for _ in iterate_activations(model, chosen, warm, dev, progress=False):
        pass
    loader = make_loader(range(len(paths)), paths, 224, 256, batch, 0)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    n = 0
    for batch_result in iterate_activations(model, chosen, loader, dev, progress=False):
        n += len(batch_result.image_id)
    seconds = time.perf_counter() - start
    row = {"arch": arch, "layers": layers, "n_layers": len(chosen),
           "neurons": int(sum(mx.shape[1] for mx, _ in batch_result.values.values())),
           "images": n, "seconds": seconds, "images_per_s": n / seconds,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "device": str(dev)}
    if dev.type == "cuda":
        row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--arch", action="append", default=None, help="add a network (with --layers)")
    parser.add_argument("--layers", action="append", default=None)
    parser.add_argument("--one", nargs=2, metavar=("ARCH", "LAYERS"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(*args.one, args.images, args.device, args.threads, args.batch)))
        return 0
    if not (PHOTOS / "images.csv").exists():
        print(f"{PHOTOS} is absent: nothing to measure", file=sys.stderr)
        return 0
    models = list(DEFAULT_MODELS)
    for arch, layers in zip(args.arch or [], args.layers or ["all"] * len(args.arch or [])):
        models.append((arch, layers))
    rows = []
    for arch, layers in models:
        out = subprocess.run([sys.executable, __file__, "--one", arch, layers, "--images", str(args.images),
                              "--device", args.device, "--threads", str(args.threads), "--batch", str(args.batch)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"{base['images']} photos of {PHOTOS.name}, 224 px, batch {args.batch}, {args.threads} threads, "
          f"{base['device']}, random weights, fp32")
    print(f"{'network':<32} {'layers':>6} {'neurons':>8} {'images/s':>9} {'x vgg16':>8} {'peak RSS MB':>12} {'x vgg16':>8}")
    for row in rows:
        print(f"{row['arch'] + ' (' + row['layers'] + ')':<32} {row['n_layers']:>6} {row['neurons']:>8} "
              f"{row['images_per_s']:>9.2f} {row['images_per_s'] / base['images_per_s']:>8.2f} "
              f"{row['peak_rss_mb']:>12.0f} {row['peak_rss_mb'] / base['peak_rss_mb']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
