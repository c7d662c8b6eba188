"""Benchmark of the ICA stage: seconds per neuron per VGG16 layer and mode, our overhead
against plain scikit-learn FastICA on the same matrices, the whole-stage estimate for VGG16
at k = 100, and the parallel efficiency from 1 to 2 worker processes.

Patches: k = 100 receptive-field patches per neuron, cut with the stage's own cutter
(VGG16 geometry, random units) from real photographs (../shared/data/imagenet-sample,
shorter side 256, centre crop 224), or from synthetic structured images (smooth blobs,
edges and texture) when that folder is absent. Every timing runs with BLAS pinned to one
thread, as in the stage's workers.

    python benchmarks/ica.py [--neurons 4] [--layers conv1_1,conv5_3] [--alt-max-iter 100]

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import zarr
from PIL import Image
from sklearn.decomposition import FastICA
from threadpoolctl import threadpool_limits

from neurofacets.ica import LUMA_WEIGHTS, fit_sources, neuron_ica, to_uint8, write_ica_store
from neurofacets.patches import LayerGeometry, cut_patch, receptive_field_box, write_patch_store
from neurofacets.topk import TopK

# layer: (channels, map side, rf, jump, start) of VGG16 at 224 px
VGG16 = {
    "conv1_1": (64, 224, 3, 1, 0.0),
    "conv1_2": (64, 224, 5, 1, 0.0),
    "conv2_1": (128, 112, 10, 2, 0.5),
    "conv2_2": (128, 112, 14, 2, 0.5),
    "conv3_1": (256, 56, 24, 4, 1.5),
    "conv3_2": (256, 56, 32, 4, 1.5),
    "conv3_3": (256, 56, 40, 4, 1.5),
    "conv4_1": (512, 28, 60, 8, 3.5),
    "conv4_2": (512, 28, 76, 8, 3.5),
    "conv4_3": (512, 28, 92, 8, 3.5),
    "conv5_1": (512, 14, 132, 16, 7.5),
    "conv5_2": (512, 14, 164, 16, 7.5),
    "conv5_3": (512, 14, 196, 16, 7.5),
}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"
K = 100
SETTINGS = dict(n_components=8, max_iter=400, tol=1e-4, seed=0)


def load_images(count: int, seed: int) -> tuple[np.ndarray, str]:
    """``count`` preprocessed 224 px RGB images and a word on where they came from."""
    rng = np.random.default_rng(seed)
    if (DATA / "images.csv").exists():
        files = sorted((DATA / "images").iterdir())
        chosen = rng.choice(len(files), size=min(count, len(files)), replace=False)
        images = []
        for i in sorted(chosen):
            with Image.open(files[i]) as im:
                im = im.convert("RGB")
                scale = 256 / min(im.size)
                im = im.resize((max(256, round(im.width * scale)), max(256, round(im.height * scale))), Image.BILINEAR)
                left, top = (im.width - 224) // 2, (im.height - 224) // 2
                images.append(np.asarray(im.crop((left, top, left + 224, top + 224))))
        return np.stack(images), f"{len(images)} ImageNet photographs (imagenet-sample)"
    y, x = np.mgrid[0:224, 0:224] / 224.0
    images = []
    for _ in range(count):
        f, phase, cx, cy = rng.uniform(2, 12), rng.uniform(0, 6.3), rng.uniform(0, 1), rng.uniform(0, 1)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.05)
        edge = (np.cos(phase) * (x - cx) + np.sin(phase) * (y - cy) > 0).astype(float)
        texture = np.sin(2 * np.pi * f * (x * np.cos(phase) + y * np.sin(phase)))
        rgb = np.stack([blob + 0.3 * texture, edge + 0.2 * texture, 0.5 * blob + 0.5 * edge], -1)
        rgb += rng.normal(0, 0.05, rgb.shape)
        images.append(np.clip(rgb / rgb.max() * 255, 0, 255).astype(np.uint8))
    return np.stack(images), f"{count} synthetic structured images (imagenet-sample absent)"


def neuron_patches(images: np.ndarray, layer: str, rng: np.random.Generator) -> np.ndarray:
    """k patches of one simulated neuron: distinct images, random units of the layer's map."""
    _, side, rf, jump, start = VGG16[layer]
    out = np.empty((K, rf, rf, 3), dtype=np.uint8)
    for i, image in enumerate(rng.choice(len(images), size=K, replace=False)):
        r, c = rng.integers(0, side, size=2)
        top, left, _, _ = receptive_field_box(int(r), int(c), rf, jump, start)
        out[i] = cut_patch(images[image], top, left, rf)
    return out


def matrices(patches: np.ndarray) -> list[np.ndarray]:
    """The four float32 signal matrices (k, pixels) the stage fits: luminance, R, G, B."""
    n = len(patches)
    planes = [np.ascontiguousarray(patches[..., c], dtype=np.float32).reshape(n, -1) for c in range(3)]
    w = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    return [(w @ np.stack(planes).reshape(3, -1)).reshape(n, -1), *planes]


def plain_fastica(signals: np.ndarray) -> None:
    """Plain scikit-learn FastICA on X = signals.T, the same settings as the stage."""
    FastICA(whiten="unit-variance", whiten_solver="eigh", random_state=SETTINGS["seed"],
            n_components=SETTINGS["n_components"], max_iter=SETTINGS["max_iter"], tol=SETTINGS["tol"]).fit_transform(signals.T)


def timed(fn, *args, **kwargs) -> float:
    """CPU seconds of one call (this process; BLAS is pinned to one thread, so this is the
    compute a worker spends, unaffected by other jobs sharing the cores)."""
    start = time.process_time()
    fn(*args, **kwargs)
    return time.process_time() - start


def per_layer(images: np.ndarray, layers: list[str], neurons: int, alt_max_iter: int) -> list[dict]:
    rows = []
    fit = dict(SETTINGS)
    alt = dict(SETTINGS, max_iter=alt_max_iter)
    for layer in layers:
        rng = np.random.default_rng(list(VGG16).index(layer))  # same patches every run
        t_ours = t_plain = t_gray = t_rgb = t_alt = 0.0
        iters, not_converged = [], 0
        for _ in range(neurons):
            patches = neuron_patches(images, layer, rng)
            mats = matrices(patches)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_plain += sum(timed(plain_fastica, m) for m in mats)
            start = time.process_time()
            result = neuron_ica(patches, **fit)
            t_ours += time.process_time() - start
            iters += result.n_iter.tolist()
            not_converged += int((~result.converged).sum())
            # per mode: gray = the luminance fit; rgb (+ uint8) = the three channel fits
            t_gray += timed(fit_sources, mats[0], **fit)
            t_rgb += timed(lambda: to_uint8(np.stack([fit_sources(m, **fit).sources for m in mats[1:]], axis=-1)))
            t_alt += timed(neuron_ica, patches, **alt)
        rows.append(
            dict(layer=layer, channels=VGG16[layer][0], rf=VGG16[layer][2], ours=t_ours / neurons,
                 plain=t_plain / neurons, gray=t_gray / neurons, rgb=t_rgb / neurons, alt=t_alt / neurons,
                 iters=float(np.mean(iters)), not_converged=not_converged / (4 * neurons))
        )
        print(f"  {layer}: {rows[-1]['ours']:.3f} s/neuron", flush=True)
    return rows


def parallel_efficiency(images: np.ndarray, layer: str, neurons: int) -> list[dict]:
    """The stage's layer job (write_ica_store) on ``neurons`` neurons with 1 and 2 workers.

    Wall seconds, and CPU seconds of the parent plus its worker processes (which a busy
    machine does not inflate: their ratio is the work parallelism adds, e.g. starting the
    workers and moving patches to them).
    """
    rng = np.random.default_rng(7)
    rf = VGG16[layer][2]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        store = zarr.open_group(f"{tmp}/patches.zarr", mode="w", zarr_format=3)
        array = store.create_array("patches", shape=(neurons, K, rf, rf, 3), chunks=(1, K, rf, rf, 3), dtype="uint8")
        for n in range(neurons):
            array[n] = neuron_patches(images, layer, rng)
        store.create_array("n_counted", shape=(neurons,), dtype="int32")[:] = K
        store.attrs["layer"] = layer
        for workers in (1, 2):
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu, wall = time.process_time(), time.perf_counter()
            write_ica_store(f"{tmp}/ica{workers}.zarr", f"{tmp}/patches.zarr", workers=workers, **SETTINGS)
            wall = time.perf_counter() - wall
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = time.process_time() - cpu + (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
            out.append(dict(workers=workers, wall=wall, cpu=cpu, load=os.getloadavg()[0]))
    return out


def patch_stage(images: np.ndarray, layers: list[str], neurons: int) -> list[dict]:
    """CPU seconds per neuron of cutting and writing patches (write_patch_store), images
    already decoded; the store is compressed as in the stage."""
    rows = []
    for layer in layers:
        channels, side, rf, jump, start = VGG16[layer]
        rng = np.random.default_rng(3)
        image_id = np.stack([rng.choice(len(images), size=K, replace=False) for _ in range(neurons)])
        argmax = rng.integers(0, side * side, size=(neurons, K)).astype(np.int32)
        topk = TopK(layer, image_id.astype(np.int64), np.ones((neurons, K), np.float32), argmax,
                    np.full(neurons, K, np.int32), side, side, len(images))
        geometry = LayerGeometry(layer, "features.0", neurons, side, side, rf, int(jump), float(start))
        with tempfile.TemporaryDirectory() as tmp:
            cpu = time.process_time()
            write_patch_store(f"{tmp}/p.zarr", topk, geometry, lambda i: images[i], image_size=224)
            cpu = time.process_time() - cpu
            size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        raw = neurons * K * rf * rf * 3
        rows.append(dict(layer=layer, channels=channels, rf=rf, per_neuron=cpu / neurons, ratio=raw / size,
                         layer_gb=channels * K * rf * rf * 3 / 1e9))
    return rows


def decode_cost(count: int = 40) -> float | None:
    """CPU seconds to load + preprocess one photograph with the stage's loader."""
    if not (DATA / "images.csv").exists():
        return None
    from neurofacets.images import preprocess_uint8

    files = sorted((DATA / "images").iterdir())[:count]
    cpu = time.process_time()
    for f in files:
        preprocess_uint8(f, 224, 256)
    return (time.process_time() - cpu) / len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, default=4, help="simulated neurons per layer")
    parser.add_argument("--layers", default=",".join(VGG16), help="comma-separated VGG16 layers")
    parser.add_argument("--alt-max-iter", type=int, default=100, help="a second max_iter to cost")
    parser.add_argument("--parallel-layer", default="conv5_1")
    parser.add_argument("--parallel-neurons", type=int, default=96)
    args = parser.parse_args()
    layers = args.layers.split(",")
    images, source = load_images(300, seed=0)
    print(f"patches: k={K} from {source}; FastICA {SETTINGS}; float32; 1 BLAS thread; "
          f"{os.cpu_count()} CPUs; CPU seconds (time.process_time)", flush=True)
    with threadpool_limits(limits=1):  # as in the stage's workers
        rows = per_layer(images, layers, args.neurons, args.alt_max_iter)

    print(f"\n| layer | neurons | rf | ours s/neuron (4 fits) | plain FastICA s/neuron | ours / plain | gray s | "
          f"rgb+uint8 s | mean n_iter | not converged | layer CPU s | ours at max_iter={args.alt_max_iter} s/neuron |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    total_ours = total_plain = total_alt = 0.0
    for r in rows:
        total_ours += r["ours"] * r["channels"]
        total_plain += r["plain"] * r["channels"]
        total_alt += r["alt"] * r["channels"]
        print(f"| {r['layer']} | {r['channels']} | {r['rf']} | {r['ours']:.4f} | {r['plain']:.4f} | "
              f"{r['ours'] / r['plain']:.2f}x | {r['gray']:.4f} | {r['rgb']:.4f} | {r['iters']:.0f} | "
              f"{100 * r['not_converged']:.0f}% | {r['ours'] * r['channels']:.0f} | {r['alt']:.4f} |")

    one, two = parallel_efficiency(images, args.parallel_layer, args.parallel_neurons)
    print(f"\n| layer job {args.parallel_layer}, {args.parallel_neurons} neurons | wall s | CPU s (parent + workers) "
          "| 1-min load average after |")
    print("|---|---|---|---|")
    for run in (one, two):
        print(f"| {run['workers']} worker(s) | {run['wall']:.1f} | {run['cpu']:.1f} | {run['load']:.1f} |")
    startup = max(0.0, two["cpu"] - one["cpu"])  # CPU seconds a 2-worker job adds (spawning, imports)
    jobs = len(rows)
    neurons = sum(r["channels"] for r in rows)
    print("\n| measure | value |\n|---|---|")
    print(f"| neurons covered | {neurons} in {jobs} layer jobs |")
    print(f"| ours, CPU s | {total_ours:.0f} |")
    print(f"| plain FastICA on the same matrices, CPU s | {total_plain:.0f} |")
    print(f"| overhead ours / plain | {total_ours / total_plain:.2f}x |")
    print(f"| parallel efficiency 1 -> 2 workers, wall t1 / (2 t2) | {one['wall'] / (2 * two['wall']):.2f} |")
    print(f"| CPU added by 2 workers per layer job (start-up) | {startup:.1f} s |")
    print(f"| stage estimate, 2 idle cores, max_iter={SETTINGS['max_iter']}: (ours + jobs x start-up) / 2 | "
          f"{(total_ours + jobs * startup) / 2:.0f} s |")
    print(f"| stage estimate, 2 idle cores, max_iter={args.alt_max_iter} | {(total_alt + jobs * startup) / 2:.0f} s |")

    patch_rows = patch_stage(images, ["conv1_1", "conv3_3", "conv4_3", "conv5_3"], neurons=8)
    decode = decode_cost()
    print("\n| patches: layer | rf | CPU s/neuron (cut + compress + write) | layer CPU s | layer GB raw | compression |")
    print("|---|---|---|---|---|---|")
    for r in patch_rows:
        print(f"| {r['layer']} | {r['rf']} | {r['per_neuron']:.4f} | {r['per_neuron'] * r['channels']:.0f} | "
              f"{r['layer_gb']:.2f} | {r['ratio']:.1f}x |")
    if decode is not None:
        print(f"\nDecoding + preprocessing one photograph (preprocess_uint8): {decode * 1000:.1f} ms CPU; "
              "each layer job decodes every distinct image it needs once.")


if __name__ == "__main__":
    main()
