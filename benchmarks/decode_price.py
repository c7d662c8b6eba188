"""The price of exactness: extraction images/s with the reference preprocessing (``decode: auto``
= ``pil``) against ``decode: torchvision``, side by side in one run on the same photos.

Each repeat times both paths in alternating order through the real loader and forward pass
(:func:`neurofacets.extract.make_loader` + :func:`neurofacets.extract.iterate_activations`,
VGG16, every conv layer) and, separately, the decoding and preprocessing alone (one core).
Both paths check JPEGs for corrupt data (:func:`neurofacets.images.jpeg_corruption`); the
check's own cost is timed too.

    python benchmarks/decode_price.py [--images 48] [--size 224] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from neurofacets.decode import ImageDecoder
from neurofacets.extract import iterate_activations, make_loader
from neurofacets.images import jpeg_corruption, read_image_bytes
from neurofacets.models import build_model, select_layers

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-sample"
DECODES = ("pil", "torchvision")


def extraction_rate(model, layers, paths: list[str], size: int, resize: int, decode: str) -> float:
    loader = make_loader(range(len(paths)), paths, size, resize, batch_size=16, workers=0, decode=decode)
    start = time.perf_counter()
    for _ in iterate_activations(model, layers, loader, torch.device("cpu"), progress=False):
        pass
    return len(paths) / (time.perf_counter() - start)


def decode_rate(paths: list[str], size: int, resize: int, decode: str | None) -> float:
    fn = (lambda p: jpeg_corruption(read_image_bytes(p))) if decode is None else ImageDecoder(decode, size, resize)
    start = time.perf_counter()
    for path in paths:
        fn(path)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    resize = args.size * 256 // 224
    table = pd.read_csv(PHOTOS / "images.csv")
    step = max(1, len(table) // args.images)
    paths = [str(PHOTOS / p) for p in table["path"][::step][: args.images]]
    model = build_model("vgg16", seed=0).eval()
    layers = select_layers(model, "vgg16", "conv")
    torch.set_num_threads(args.threads)
    extract = {d: [] for d in DECODES}
    decode = {d: [] for d in (*DECODES, "corruption check alone")}
    extraction_rate(model, layers, paths[:16], args.size, resize, "pil")  # warm-up
    for r in range(args.repeats):
        order = DECODES if r % 2 == 0 else DECODES[::-1]
        for d in order:
            extract[d].append(extraction_rate(model, layers, paths, args.size, resize, d))
        torch.set_num_threads(1)
        for d in order:
            decode[d].append(decode_rate(paths, args.size, resize, d))
        decode["corruption check alone"].append(decode_rate(paths, args.size, resize, None))
        torch.set_num_threads(args.threads)
    print(f"{len(paths)} ImageNet photos, VGG16 (13 conv layers) at {args.size} px on the CPU "
          f"({args.threads} threads), best of {args.repeats} alternating repeats")
    print("| path | extraction images/s | ratio to pil | decode + preprocess images/s (1 core) | ratio to pil |")
    print("|---|---:|---:|---:|---:|")
    for d in DECODES:
        e, p = max(extract[d]), max(decode[d])
        print(f"| {d} | {e:.2f} | {e / max(extract['pil']):.3f} | {p:.0f} | {p / max(decode['pil']):.2f} |")
    check = max(decode["corruption check alone"])
    print(f"| corruption check alone (simplejpeg strict) | | | {check:.0f} | |")


if __name__ == "__main__":
    main()
