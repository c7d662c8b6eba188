"""CPU decode rates per core of each ``extraction.decode`` path, and how far their crops are
from the PIL path's, on the real photos in ../shared/data/imagenet-sample.

Per core: one process, one torch thread, files read from the page cache; the variants are
interleaved over ``--repeats`` rounds and the best round counts (the machine is shared).

- ``pil``: the reference, PIL decode + whole-image resize + crop (``ImageDecoder("pil")``);
- ``torchvision``: torchvision.io.decode_jpeg + tensor resize + crop, PIL for odd files;
- ``nvjpeg, worker share``: what a DataLoader worker does for ``nvjpeg`` (read the file,
  parse the JPEG header); the decoding itself happens on the GPU;
- ``decode only``: the two decoders without resizing, for reference.

    python benchmarks/decode.py [--images 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from neurofacets.decode import TOLERANCE_LEVELS, ImageDecoder, decode_jpeg_rgb, plain_jpeg_size

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample" / "images"


def variants(size: int, resize: int) -> dict:
    pil, tv, nv = (ImageDecoder(d, size, resize) for d in ("pil", "torchvision", "nvjpeg"))
    return {
        "pil": pil,
        "torchvision": tv,
        "nvjpeg, worker share (read + header)": nv,
        "decode only: PIL": lambda p: Image.open(p).convert("RGB"),
        "decode only: torchvision.io": lambda p: decode_jpeg_rgb(
            torch.frombuffer(bytearray(Path(p).read_bytes()), dtype=torch.uint8), "cpu"),
    }


def rates(paths: list[Path], size: int, resize: int, repeats: int) -> dict[str, float]:
    torch.set_num_threads(1)
    fns = variants(size, resize)
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for path in paths:
                fn(path)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(paths) / t for name, t in best.items()}


def differences(paths: list[Path], size: int, resize: int) -> None:
    pil, tv = ImageDecoder("pil", size, resize), ImageDecoder("torchvision", size, resize)
    per_image, differing, mean_abs, to_pil = [], [], [], 0
    for path in paths:
        a, b = pil(path).pixels.numpy().astype(int), tv(path).pixels.numpy().astype(int)
        diff = np.abs(a - b)
        per_image.append(int(diff.max()))
        differing.append(float(np.mean(diff > 0)))
        mean_abs.append(float(diff.mean()))
        to_pil += plain_jpeg_size(path.read_bytes()) is None
    print(f"\n### torchvision crop vs PIL crop, {len(paths)} real photos, resize {resize}, crop {size}\n")
    print("| max abs difference of an image (levels of 255) | images |\n|---:|---:|")
    for level, n in enumerate(np.bincount(per_image)):
        print(f"| {level} | {n} |")
    print(f"\nvalues that differ: {100 * np.mean(differing):.2f} % on average; mean abs difference "
          f"{np.mean(mean_abs):.4f} levels; stated tolerance {TOLERANCE_LEVELS} levels "
          f"({'met' if max(per_image) <= TOLERANCE_LEVELS else 'NOT met'}); "
          f"{to_pil} photos are not plain JPEGs and went through PIL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="photos for the rates")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--resize", type=int, default=256)
    args = parser.parse_args()
    paths = sorted(PHOTOS.glob("*.JPEG"))
    if not paths:
        raise SystemExit(f"{PHOTOS} is absent")
    sample = paths[:: max(1, len(paths) // args.images)][: args.images]
    result = rates(sample, args.size, args.resize, args.repeats)
    base = result["pil"]
    print(f"### Images/s per core, {len(sample)} real photos, resize {args.resize}, crop {args.size}, "
          f"best of {args.repeats}\n")
    print("| path | images/s per core | ratio to pil |\n|---|---:|---:|")
    for name, rate in result.items():
        print(f"| {name} | {rate:.0f} | {rate / base:.2f} |")
    differences(paths, args.size, args.resize)


if __name__ == "__main__":
    main()
