"""Cost of the figures and the gallery at VGG16 scale (13 layers, 4224 neurons).

Run: ``python benchmarks/figures.py [--quick]``; prints markdown tables.

1. Every figure of docs/reference/figures.md drawn and written (PDF + PNG, 150 dpi) from VGG16-shaped
   inputs: a metrics table of 4224 neurons, 13 similarity stores (up to 512 x 512), and
   ICA / patch stores of the real shapes (k = 8 patches, 8 ICs, rf up to 196) in which only
   the neurons the figures show are written (zarr reads the rest as fill values; the
   figures never touch them).
2. Gallery card images: the cost per neuron at each receptive-field size, measured on a
   sample of neurons with random patches and ICs, extrapolated to VGG16's 4224 neurons,
   side by side for PNG compression levels 3 and 6.
3. One composite PNG per card against one PNG per tile (files and time), same sample.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from PIL import Image

from neurofacets import gallery
from neurofacets.metrics import all_layers_table
from neurofacets.figures import FIGURES, build_figure, facets, images

# VGG16 conv layers: (name, channels, rf at 224 px)
VGG16 = [
    ("conv1_1", 64, 3), ("conv1_2", 64, 5), ("conv2_1", 128, 10), ("conv2_2", 128, 14),
    ("conv3_1", 256, 24), ("conv3_2", 256, 32), ("conv3_3", 256, 40), ("conv4_1", 512, 60),
    ("conv4_2", 512, 76), ("conv4_3", 512, 92), ("conv5_1", 512, 132), ("conv5_2", 512, 164),
    ("conv5_3", 512, 196),
]
K = 8
N_COMP = 8


def fake_metrics(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for depth, (name, channels, _) in enumerate(VGG16):
        sparsity = np.clip(rng.normal(0.5 + 0.03 * depth, 0.08, channels), 0.05, 0.99)
        flat = np.clip(rng.normal(0.5 - 0.03 * depth, 0.08, channels), 0.01, 0.99)
        dead = rng.random(channels) < 0.02
        mf = np.where(dead, np.nan, flat / sparsity)
        rows.append(pd.DataFrame({
            "layer": name, "neuron": np.arange(channels), "n_counted": np.where(dead, 0, 100),
            "sparsity": np.where(dead, np.nan, sparsity), "flatness": np.where(dead, -1.0, flat), "mf": mf,
            "p_value": rng.random(channels), "p_empirical": rng.random(channels),
            "top_classes": '[["tench", 12], ["goldfish", 9], ["great white shark", 4]]',
        }))
    return all_layers_table(rows, "global_mean")


def smooth_images(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random images with natural-ish low-frequency structure (so PNGs compress realistically)."""
    *lead, h, w, c = shape
    small = rng.integers(0, 256, size=(*lead, max(2, h // 6), max(2, w // 6), c), dtype=np.uint8)
    flat = small.reshape(-1, *small.shape[-3:])
    out = np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.Resampling.BILINEAR)) for im in flat])
    noise = rng.integers(-12, 13, size=out.shape)
    return np.clip(out.astype(int) + noise, 0, 255).astype(np.uint8).reshape(shape)


def write_run(root: Path, rng: np.random.Generator) -> dict:
    """VGG16-shaped inputs of the figures; ICA/patch stores written only where shown."""
    out = root / "results" / "bench"
    (out / "model").mkdir(parents=True)
    pd.DataFrame({"layer": [n for n, _, _ in VGG16]}).to_csv(out / "model" / "layers.csv", index=False)
    metrics = fake_metrics(rng)
    (out / "metrics").mkdir()
    metrics.to_csv(out / "metrics" / "all_layers.csv", index=False)
    layers = [n for n, _, _ in VGG16]
    shown: dict[str, set[int]] = {name: set() for name in layers}
    for facet in ("SF", "MF"):
        for row in facets.top_neurons(metrics, layers, facet, 1).itertuples():
            shown[row.layer].add(int(row.neuron))
    for name in layers:
        shown[name] |= set(facets.spread_neurons(metrics, name, 5)["neuron"].astype(int))
    summary = []
    for name, channels, rf in VGG16:
        a = rng.normal(size=(channels, 40))
        pearson = np.corrcoef(a)
        euclid = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
        xr.Dataset({"pearson": (("i", "j"), pearson), "euclidean": (("i", "j"), euclid),
                    "excluded": (("i",), np.zeros(channels, bool))}).to_zarr(
            out / "similarity" / f"{name}.zarr", zarr_format=3, mode="w", consolidated=False)
        summary.append({"layer": name, "mean_similarity": 0.1, "mean_dissimilarity": 9.0, "n_excluded": 0})
        group = zarr.open_group(str(out / "patches" / f"{name}.zarr"), mode="w", zarr_format=3)
        patches = group.create_array("patches", shape=(channels, K, rf, rf, 3), chunks=(1, K, rf, rf, 3),
                                     dtype="uint8", fill_value=0)
        group.create_array("n_counted", shape=(channels,), dtype="int32")[:] = K
        ica = zarr.open_group(str(out / "ica" / f"{name}.zarr"), mode="w", zarr_format=3)
        arrays = {
            "gray": ica.create_array("gray", shape=(channels, N_COMP, rf, rf), chunks=(1, N_COMP, rf, rf),
                                     dtype="float32", fill_value=0),
            "rgb": ica.create_array("rgb", shape=(channels, N_COMP, rf, rf, 3), chunks=(1, N_COMP, rf, rf, 3),
                                    dtype="float32", fill_value=0),
            "uint8": ica.create_array("uint8", shape=(channels, N_COMP, rf, rf, 3),
                                      chunks=(1, N_COMP, rf, rf, 3), dtype="uint8", fill_value=0),
        }
        for neuron in sorted(shown[name]):
            patches[neuron] = smooth_images(rng, (K, rf, rf, 3))
            arrays["gray"][neuron] = rng.normal(size=(N_COMP, rf, rf)).astype(np.float32)
            arrays["rgb"][neuron] = rng.normal(size=(N_COMP, rf, rf, 3)).astype(np.float32)
            arrays["uint8"][neuron] = smooth_images(rng, (N_COMP, rf, rf, 3))
    pd.DataFrame(summary).to_csv(out / "similarity" / "summary.csv", index=False)
    return {
        "metrics": out / "metrics" / "all_layers.csv",
        "layers": out / "model" / "layers.csv",
        "ica": [out / "ica" / f"{n}.zarr" for n in layers],
        "patches": [out / "patches" / f"{n}.zarr" for n in layers],
        "similarity": [out / "similarity" / f"{n}.zarr" for n in layers],
        "similarity_summary": out / "similarity" / "summary.csv",
        "out": out,
    }


def bench_figures(inputs: dict, out: Path) -> list[tuple[str, float, float, float]]:
    rows = []
    for stem in FIGURES:
        if stem == "compare_runs":
            continue
        paths = [out / f"{stem}.pdf", out / f"{stem}.png"]
        start = time.perf_counter()
        build_figure(stem, inputs, paths, dpi=150, options={"examples_per_layer": 1})
        seconds = time.perf_counter() - start
        rows.append((stem, seconds, paths[0].stat().st_size / 1e6, paths[1].stat().st_size / 1e6))
    return rows


class _SampleStore:
    """In-memory ICA and patch stores of ``n`` neurons at one rf (stand-ins for the zarr views)."""

    def __init__(self, rng: np.random.Generator, n: int, rf: int):
        self.gray = rng.normal(size=(n, N_COMP, rf, rf)).astype(np.float32)
        self.uint8 = smooth_images(rng, (n, N_COMP, rf, rf, 3))
        self.patches = smooth_images(rng, (n, K, rf, rf, 3))


def bench_cards(rng: np.random.Generator, sample: int, work: Path) -> list[dict]:
    rows = []
    for name, channels, rf in VGG16:
        data = _SampleStore(rng, sample, rf)
        row = {"layer": name, "rf": rf, "channels": channels}
        for level in (3, 6):
            folder = work / f"{name}-{level}"
            folder.mkdir(parents=True)
            start = time.perf_counter()
            for i in range(sample):
                strip = gallery.neuron_strip(data.gray[i], data.uint8[i], data.patches[i], gallery.TILE)
                Image.fromarray(strip).save(folder / f"n{i:04d}.png", compress_level=level)
            row[f"ms{level}"] = 1e3 * (time.perf_counter() - start) / sample
            row[f"kb{level}"] = sum(p.stat().st_size for p in folder.iterdir()) / sample / 1e3
        rows.append(row)
    return rows


def bench_tiles(rng: np.random.Generator, sample: int, work: Path, rf: int = 24) -> dict:
    data = _SampleStore(rng, sample, rf)
    result = {}
    for mode in ("card", "tiles"):
        folder = work / f"tiles-{mode}"
        folder.mkdir(parents=True)
        start = time.perf_counter()
        for i in range(sample):
            if mode == "card":
                strip = gallery.neuron_strip(data.gray[i], data.uint8[i], data.patches[i], gallery.TILE)
                Image.fromarray(strip).save(folder / f"n{i:04d}.png", compress_level=3)
            else:
                for kind, tiles in (("g", data.gray[i]), ("u", data.uint8[i]), ("p", data.patches[i])):
                    for j, tile in enumerate(tiles):
                        Image.fromarray(images.resize_tile(tile, gallery.TILE)).save(
                            folder / f"n{i:04d}-{kind}{j}.png", compress_level=3)
        result[mode] = (time.perf_counter() - start, len(list(folder.iterdir())))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 neurons per rf instead of 32")
    args = parser.parse_args()
    sample = 8 if args.quick else 32
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="nf-bench-"))
    try:
        start = time.perf_counter()
        inputs = write_run(work, rng)
        setup = time.perf_counter() - start
        figures = bench_figures(inputs, work / "figures")
        cards = bench_cards(rng, sample, work / "cards")
        tiles = bench_tiles(rng, sample, work / "tiles")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, "
          f"Python {platform.python_version()}; fabricating the inputs took {setup:.1f} s.\n")
    print("### Figures at VGG16 scale (13 layers, 4224 neurons), PDF + PNG at 150 dpi\n")
    print("| figure | seconds | PDF MB | PNG MB |\n|---|---:|---:|---:|")
    for stem, seconds, pdf, png in figures:
        print(f"| {stem} | {seconds:.2f} | {pdf:.2f} | {png:.2f} |")
    print(f"| **all 8** | **{sum(r[1] for r in figures):.1f}** | | |\n")

    print(f"### Gallery card images ({sample} neurons per rf, 8 ICs gray + 8 uint8 + 8 patches, "
          f"{gallery.TILE} px tiles)\n")
    print("| layer | rf | ms/card level 3 | ms/card level 6 | time 6/3 | kB/card 3 | kB/card 6 | size 6/3 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in cards:
        print(f"| {r['layer']} | {r['rf']} | {r['ms3']:.1f} | {r['ms6']:.1f} | {r['ms6'] / r['ms3']:.2f} | "
              f"{r['kb3']:.1f} | {r['kb6']:.1f} | {r['kb6'] / r['kb3']:.2f} |")
    total3 = sum(r["ms3"] * r["channels"] for r in cards) / 1e3
    total6 = sum(r["ms6"] * r["channels"] for r in cards) / 1e3
    size3 = sum(r["kb3"] * r["channels"] for r in cards) / 1e3
    size6 = sum(r["kb6"] * r["channels"] for r in cards) / 1e3
    print(f"\nExtrapolated to VGG16's 4224 cards (one core): level 3 {total3:.0f} s, {size3:.0f} MB; "
          f"level 6 {total6:.0f} s, {size6:.0f} MB.\n")
    (card_s, card_n), (tile_s, tile_n) = tiles["card"], tiles["tiles"]
    print(f"### One PNG per card vs one PNG per tile (rf 24, {sample} neurons)\n")
    print("| layout | files | seconds | ratio |\n|---|---:|---:|---:|")
    print(f"| one composite per card | {card_n} | {card_s:.2f} | 1.00 |")
    print(f"| one file per tile | {tile_n} | {tile_s:.2f} | {tile_s / card_s:.2f} |")


if __name__ == "__main__":
    main()
