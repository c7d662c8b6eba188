"""Extraction throughput and memory, measured side by side in one run.

1. images/s of the hooked extraction (max/argmax on the device, forward stopped after the
   last layer) against a pure forward pass of the same model on the same batches, and
   against the naive way (hooks copy full maps to numpy, reduce on the host);
2. peak memory of a whole shard job at N and 4N images (should be flat);
3. JPEG decode + preprocessing alone, per core, on the real photos in ../shared/data.

    python benchmarks/extract.py [--size 128] [--images 48]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neurofacets.extract import MaxArgmaxHooks, iterate_activations, make_loader
from neurofacets.store import ActivationShardWriter
from neurofacets.images import preprocess_uint8
from neurofacets.models import build_model, select_layers

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample"


def naive_run(model, layers, x):
    """Hooks that copy every full map to numpy and reduce on the host."""
    modules = dict(model.named_modules())
    result = {}

    def hook(name):
        def fn(_m, _i, out):
            fmap = torch.relu(out).cpu().numpy().copy()
            flat = fmap.reshape(fmap.shape[0], fmap.shape[1], -1)
            result[name] = (flat.max(axis=2), flat.argmax(axis=2))
        return fn

    handles = [modules[layer.hook_path].register_forward_hook(hook(layer.name)) for layer in layers]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return result


def time_variants(size: int, n_images: int, batch: int, repeats: int) -> dict[str, float]:
    model = build_model("vgg16", seed=0)
    layers = select_layers(model, "vgg16", "conv")
    batches = [torch.randn(batch, 3, size, size) for _ in range(n_images // batch)]
    hooked = copy.deepcopy(model)  # hooks stay registered on this copy only
    hooks = MaxArgmaxHooks(hooked, layers)
    variants = {
        "pure forward (whole model)": lambda x: model(x),
        "neurofacets hooks": lambda x: hooks.run(hooked, x),
        "naive hooks (full maps to numpy)": lambda x: naive_run(model, layers, x),
    }
    best = {name: float("inf") for name in variants}
    with torch.inference_mode():
        variants["pure forward (whole model)"](batches[0])  # warm-up
        for _ in range(repeats):  # interleaved, so drifts of the machine hit every variant alike
            for name, fn in variants.items():
                start = time.perf_counter()
                for x in batches:
                    fn(x)
                best[name] = min(best[name], time.perf_counter() - start)
    hooks.remove()
    rates = {name: n_images / t for name, t in best.items()}
    photos = sorted(PHOTOS.glob("images/*.JPEG"))[:n_images]
    if len(photos) == n_images:
        rates["extraction stage (JPEG decode + hooks + zarr store)"] = stage_rate(
            model, layers, photos, size, batch, repeats)
    return rates


def stage_rate(model, layers, photos, size, batch, repeats) -> float:
    """The whole stage on real photos: DataLoader decoding, hooked forward, shard writer."""
    loader = make_loader(range(len(photos)), [str(p) for p in photos], size, size * 256 // 224,
                         batch, workers=0)
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            writer = None
            for ids, values, _ in iterate_activations(model, layers, loader, torch.device("cpu"),
                                                      progress=False):
                if writer is None:
                    shapes = {k: (v[0].shape[1], 1, 1) for k, v in values.items()}
                    writer = ActivationShardWriter(Path(tmp) / "s.zarr", len(photos), shapes)
                writer.write(ids, values)
            writer.close()
            best = min(best, time.perf_counter() - start)
    return len(photos) / best


def shard_peak_rss(n_images: int, size: int) -> float:
    """Max RSS (MiB) of a subprocess that runs one shard job on n_images probe images."""
    code = f"""
import resource, tempfile
from pathlib import Path
from neurofacets.probes import write_probe_dataset
from neurofacets.datasets import list_folder, write_dataset
from neurofacets.extract import extract_shard
from neurofacets.weights import prepare_weights
d = Path(tempfile.mkdtemp())
write_probe_dataset(d / "p", images_per_class={n_images // 12}, size={size}, seed=0)
write_dataset(list_folder(d / "p"), d / "i.csv", d / "c.csv", d / "s.csv", images_per_class=None, shards=1)
prepare_weights("random:0", "vgg16", d / "w.pt")
cfg = {{"run": "b", "model": {{"arch": "vgg16", "weights": "random:0", "layers": "conv"}},
       "extraction": {{"image_size": {size}, "resize": {size}, "batch_size": 16, "shards": 1,
                      "device": "cpu", "precision": "fp32", "workers": 0}}}}
extract_shard(cfg, d / "i.csv", 0, d / "w.pt", d / "s.zarr", threads=2)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def decode_rate(n: int = 200) -> tuple[float, int]:
    """Images/s of decode + resize 256 + crop 224 on one core, on the real photos."""
    paths = sorted(PHOTOS.glob("images/*.JPEG"))[:n]
    if not paths:
        return float("nan"), 0
    torch.set_num_threads(1)
    start = time.perf_counter()
    for p in paths:
        preprocess_uint8(p, 224, 256)
    return len(paths) / (time.perf_counter() - start), len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image size for the model timings")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mem-images", type=int, default=96, help="N of the memory check (and 4N)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}\n")
    rates = time_variants(args.size, args.images, args.batch, args.repeats)
    base = rates["pure forward (whole model)"]
    print(f"### VGG16, all 13 conv layers, {args.size} px, batch {args.batch}, {args.images} images, "
          f"best of {args.repeats}\n")
    print("Pure forward and hooks run on the same pre-made batches; the stage row decodes the\n"
          "same number of real photos (shorter side scaled, centre crop) and writes a store.\n")
    print("| variant | images/s | ratio to pure forward |\n|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.2f} | {rate / base:.2f} |")

    n = args.mem_images
    rss = {k: shard_peak_rss(k, 64) for k in (n, 4 * n)}
    print(f"\n### Peak memory of one shard job (64 px, all layers)\n")
    print("| images | peak RSS (MiB) |\n|---|---|")
    for k, v in rss.items():
        print(f"| {k} | {v:.0f} |")
    print(f"\nratio 4N / N: {rss[4 * n] / rss[n]:.3f}")

    rate, count = decode_rate()
    print(f"\n### JPEG decode + resize 256 + crop 224, one core, {count} real photos\n")
    print(f"{rate:.1f} images/s per core")


if __name__ == "__main__":
    main()
