"""Extraction throughput and memory, measured side by side in one run.

1. images/s of the hooked extraction (max/argmax on the device, forward stopped after the
   last layer) against a pure forward pass of the same model on the same batches, and
   against the naive way (hooks copy full maps to numpy, reduce on the host);
2. peak memory of a whole shard job at N and 4N images (should be flat);
3. JPEG decode + preprocessing alone, per core, on the real photos in ../shared/data;
4. what the store checksums cost: writing and reading one shard with and without them
   (``--checksum-only`` runs just this section).

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
            for ids, values, _, keys, _ in iterate_activations(model, layers, loader, torch.device("cpu"),
                                                               progress=False):
                if writer is None:
                    shapes = {k: (v[0].shape[1], 1, 1) for k, v in values.items()}
                    writer = ActivationShardWriter(Path(tmp) / "s.zarr", len(photos), shapes)
                writer.write(ids, values, keys)
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
from neurofacets.config import with_defaults
from neurofacets.extract import extract_shard
from neurofacets.weights import prepare_weights
d = Path(tempfile.mkdtemp())
write_probe_dataset(d / "p", images_per_class={n_images // 12}, size={size}, seed=0)
write_dataset(list_folder(d / "p"), d / "i.csv", d / "c.csv", d / "s.csv", images_per_class=None, shards=1)
prepare_weights("random:0", "vgg16", d / "w.pt")
cfg = {{"run": "b", "model": {{"arch": "vgg16", "weights": "random:0", "layers": "conv"}},
       "extraction": {{"image_size": {size}, "resize": {size}, "batch_size": 16, "shards": 1,
                      "device": "cpu", "precision": "fp32", "workers": 0}}}}
extract_shard(with_defaults(cfg), d / "i.csv", 0, d / "w.pt", d / "s.zarr", threads=2)
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


VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def checksum_cost(n_images: int = 2048, repeats: int = 3) -> dict[str, tuple[float, float, float, float]]:
    """Best-of-``repeats`` wall and CPU seconds to write and to read back one VGG16 shard.

    Every layer's ``max`` and ``argmax`` for ``n_images`` images (the 13 conv layers, 4224
    channels), written by :class:`ActivationShardWriter` and read by ``read_layer`` layer by
    layer, in four variants run interleaved, in rotating order: zarr's default zstd without
    checksum read by plain slicing (the code before checksums), the checksummed zstd with
    every chunk written and each chunk's presence checked on read (now), that store read by
    plain slicing (the checksum's share), and a crc32c codec after zstd (the alternative the
    zarr v3 spec offers). Returns per variant (write wall, read wall, write
    CPU, read CPU); CPU time (all threads of the process) is less disturbed by other jobs
    sharing the machine than wall time.
    """
    from zarr.codecs import Crc32cCodec, ZstdCodec

    from neurofacets import store

    rng = np.random.default_rng(0)
    layers = {f"conv{i}": (c, 14, 14) for i, c in enumerate(VGG16_CHANNELS)}
    values = {name: (np.maximum(rng.normal(size=(n_images, c)), 0).astype(np.float32),
                     rng.integers(0, 196, (n_images, c)).astype(np.int32))
              for name, (c, _, _) in layers.items()}
    ids = np.arange(n_images)

    def plain_read(path):  # read_layer before this change, per layer: plain slices, no checks
        for name in layers:
            root = store.open_shard(path)
            n = len(root["image_id"][:])
            group = root[name]
            mx = np.empty((n, group["max"].shape[1]), dtype=np.float32)
            am = np.empty((n, group["max"].shape[1]), dtype=np.int32)
            for start in range(0, n, store.IMAGE_CHUNK):
                stop = min(start + store.IMAGE_CHUNK, n)
                mx[start:stop] = group["max"][start:stop]
                am[start:stop] = group["argmax"][start:stop]

    def checked_read(path):
        for name in layers:
            store.read_layer([path], name)

    variants = {
        "zstd, no checksum (before)": ("auto", {}, plain_read),
        "zstd + content checksum, every chunk written (now)":
            (store.CHECKSUMMED_COMPRESSORS, store.WRITE_EVERY_CHUNK, checked_read),
        "the same store read by plain slicing (checksum alone, no chunk-presence checks)":
            (store.CHECKSUMMED_COMPRESSORS, store.WRITE_EVERY_CHUNK, plain_read),
        "zstd + crc32c codec (alternative)":
            ((ZstdCodec(level=0), Crc32cCodec()), store.WRITE_EVERY_CHUNK, checked_read),
    }
    saved = store.CHECKSUMMED_COMPRESSORS, store.WRITE_EVERY_CHUNK
    best = {name: [np.inf] * 4 for name in variants}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            items = list(variants.items())
            for r in range(repeats):
                rotated = items[r % len(items):] + items[:r % len(items)]  # no variant always first
                for i, (name, (compressors, config, read)) in enumerate(rotated):
                    path = Path(tmp) / f"{r}-{i}.zarr"
                    store.CHECKSUMMED_COMPRESSORS, store.WRITE_EVERY_CHUNK = compressors, config
                    start, cpu = time.perf_counter(), time.process_time()
                    writer = store.ActivationShardWriter(path, n_images, layers)
                    writer.write(ids, values, ids)
                    writer.close()
                    best[name][0] = min(best[name][0], time.perf_counter() - start)
                    best[name][2] = min(best[name][2], time.process_time() - cpu)
                    start, cpu = time.perf_counter(), time.process_time()
                    read(path)
                    best[name][1] = min(best[name][1], time.perf_counter() - start)
                    best[name][3] = min(best[name][3], time.process_time() - cpu)
    finally:
        store.CHECKSUMMED_COMPRESSORS, store.WRITE_EVERY_CHUNK = saved
    return {name: tuple(times) for name, times in best.items()}


def print_checksum_cost(n_images: int, repeats: int) -> None:
    cost = checksum_cost(n_images, repeats)
    mib = n_images * sum(VGG16_CHANNELS) * 8 / 2**20
    print(f"\n### Store checksums: one VGG16 shard of {n_images} images ({mib:.0f} MiB of max + "
          f"argmax), best of {repeats}\n")
    print("| variant | write s (CPU s) | read s (CPU s) | write / before: wall, CPU | read / before: wall, CPU |\n"
          "|---|---|---|---|---|")
    base = next(iter(cost.values()))
    for name, (w, r, wc, rc) in cost.items():
        print(f"| {name} | {w:.3f} ({wc:.3f}) | {r:.3f} ({rc:.3f}) | {w / base[0]:.2f}, {wc / base[2]:.2f} | "
              f"{r / base[1]:.2f}, {rc / base[3]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image size for the model timings")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mem-images", type=int, default=96, help="N of the memory check (and 4N)")
    parser.add_argument("--checksum-images", type=int, default=2048, help="images of the checksum shard")
    parser.add_argument("--checksum-only", action="store_true", help="only the store checksum section")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.checksum_only:
        print_checksum_cost(args.checksum_images, args.repeats)
        return

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

    print_checksum_cost(args.checksum_images, args.repeats)


if __name__ == "__main__":
    main()
