"""Benchmark: Picard-O started on a strided subset of the pixels, finished at full resolution (issue 30).

``python benchmarks/ica_warm_start.py --run results/demo [--layers conv3_1 conv5_3] [--neurons 8]
[--strides 2 4]``

On a run's own patch stores, each sampled neuron's four fits are prepared as the stage
prepares them (`neurofacets.ica.fit._prepare`: centring, rank, whitening), then solved
side by side in this process (one BLAS thread, CPU seconds of the solver calls only):

- **current**: Picard-O on the whitened data from the configured start (seed 0), what the
  stage stores;
- **other seed**: the same from the start of seed 1 (the scale: how often the solver itself
  lands at another optimum);
- **stride s**: Picard-O to the same tolerance on every s-th pixel (``z[:, ::s]``) from the
  seed-0 start, then Picard-O on all pixels from that answer to the same tolerance (so every
  answer is a converged Picard-O solution of the full-resolution problem).

Per layer: fits, solver CPU seconds of each variant and their ratio to the current one
(measured in one process, interleaved fit by fit), mean iterations (a stride's subset
iterations counted as 1/s of a full one), fits whose answer is the current one (every
component's one-to-one matched |correlation| with the current component >= 0.99), the
median over fits of the worst component's matched |correlation|, the components (of all
fits) matched at >= 0.99, and the share of fits where
the variant's loss (Picard's log-cosh negative log-likelihood on all pixels, with the
current answer's density signs) is lower than the current answer's, i.e. it found a better
optimum. Nothing is written.

``--tolerance-check`` instead asks whether the spread is the tolerance's or the problem's:
per layer, Picard-O from the seed-0 start at tol 1e-4 against 1e-7 (the same answer?),
seeds 0 and 1 at 1e-7, python-picard (float64) from seeds 0 and 1 at 1e-7, and
Picard-O against python-picard from seed 0 at 1e-7 (1,000 iterations at most).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from neurofacets.ica.fit import FitResult, FitSettings, _prepare, fit_signals, noise_variances
from neurofacets.ica.solvers import _log_cosh_means, initial_rotation, picard_o, python_picard
from neurofacets.patches import PatchReader

SAME = 0.99


def matched_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|correlation| of each pair of a one-to-one matching of the rows of a and b (sources)."""
    r = len(a)
    corr = np.abs(np.corrcoef(a, b)[:r, r:])
    rows, cols = linear_sum_assignment(-corr)
    return corr[rows, cols]


def loss(rotation: np.ndarray, z: np.ndarray) -> float:
    """Sum over sources of the mean log cosh (Picard's super-Gaussian loss, all signs +1)."""
    return float(_log_cosh_means((rotation.astype(np.float32) @ z)).sum())


def layer_rows(reader: PatchReader, neurons: int, settings: FitSettings, strides: list[int]) -> dict:
    stats = {"fits": 0, "current_s": 0.0, "current_iter": 0.0}
    variants = ["other seed", *(f"stride {s}" for s in strides)]
    for v in variants:
        stats |= {f"{v}_s": 0.0, f"{v}_iter": 0.0, f"{v}_same": 0, f"{v}_worst": [], f"{v}_better": 0,
                  f"{v}_components": 0, f"{v}_of": 0}
    step = max(1, reader.n_neurons // neurons)
    for neuron in range(0, reader.n_neurons, step)[:neurons]:
        patches = reader.neuron(neuron)
        rf = patches.shape[1]
        side = settings.side(rf)
        signals = fit_signals(patches, side)
        for fit, noise in enumerate(noise_variances(rf, side)):
            prepared = _prepare(signals[fit], settings, noise)
            if isinstance(prepared, FitResult):
                continue
            z = prepared.whitened.z
            r = len(z)
            start = initial_rotation(r, settings.seed)
            kw = {"max_iter": settings.max_iter, "tol": settings.tol}
            t = time.process_time()
            current = picard_o(z, start, **kw)
            stats["current_s"] += time.process_time() - t
            stats["current_iter"] += current.n_iter
            if not current.converged:
                continue
            stats["fits"] += 1
            answers = {}
            t = time.process_time()
            answers["other seed"] = picard_o(z, initial_rotation(r, settings.seed + 1), **kw)
            stats["other seed_s"] += time.process_time() - t
            stats["other seed_iter"] += answers["other seed"].n_iter
            for s in strides:
                t = time.process_time()
                rough = picard_o(np.ascontiguousarray(z[:, ::s]), start, **kw)
                polished = picard_o(z, rough.rotation, **kw)
                stats[f"stride {s}_s"] += time.process_time() - t
                stats[f"stride {s}_iter"] += polished.n_iter + rough.n_iter / s
                answers[f"stride {s}"] = polished
            sources = current.rotation @ z.astype(np.float64)
            current_loss = loss(current.rotation, z)
            for v, answer in answers.items():
                matched = matched_correlations(sources, answer.rotation @ z.astype(np.float64))
                worst = float(matched.min())
                stats[f"{v}_worst"].append(worst)
                stats[f"{v}_components"] += int(np.sum(matched >= SAME))
                stats[f"{v}_of"] += len(matched)
                stats[f"{v}_same"] += worst >= SAME and answer.converged
                stats[f"{v}_better"] += loss(answer.rotation, z) < current_loss - 1e-6
    return stats


def tolerance_check(reader: PatchReader, neurons: int, settings: FitSettings) -> dict:
    """Same-answer counts (fits, and components matched at >= SAME) of the tolerance check."""
    counts = {"fits": 0, "tol 1e-4 vs 1e-7": 0, "seeds 0 vs 1 at 1e-7": 0, "components, seeds 0 vs 1": 0,
              "python-picard seeds 0 vs 1": 0, "components, python-picard seeds 0 vs 1": 0,
              "picard_o vs python-picard": 0}
    step = max(1, reader.n_neurons // neurons)
    for neuron in range(0, reader.n_neurons, step)[:neurons]:
        patches = reader.neuron(neuron)
        rf = patches.shape[1]
        signals = fit_signals(patches, settings.side(rf))
        for fit, noise in enumerate(noise_variances(rf, settings.side(rf))):
            prepared = _prepare(signals[fit], settings, noise)
            if isinstance(prepared, FitResult):
                continue
            z = prepared.whitened.z
            z64 = z.astype(np.float64)
            starts = [initial_rotation(len(z), seed) for seed in (0, 1)]
            loose = picard_o(z, starts[0], max_iter=1000, tol=1e-4)
            tight = [picard_o(z, start, max_iter=1000, tol=1e-7) for start in starts]
            reference = [python_picard(z, start, max_iter=1000, tol=1e-7) for start in starts]
            same = [matched_correlations(a.rotation @ z64, b.rotation @ z64) for a, b in
                    ((loose, tight[0]), tuple(tight), tuple(reference), (tight[0], reference[0]))]
            counts["fits"] += 1
            for name, matched in zip(("tol 1e-4 vs 1e-7", "seeds 0 vs 1 at 1e-7", "python-picard seeds 0 vs 1",
                                      "picard_o vs python-picard"), same):
                counts[name] += bool(matched.min() >= SAME)
            counts["components, seeds 0 vs 1"] += int(np.sum(same[1] >= SAME))
            counts["components, python-picard seeds 0 vs 1"] += int(np.sum(same[2] >= SAME))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="results/demo")
    parser.add_argument("--layers", nargs="*", default=["conv3_1", "conv4_3", "conv5_3"])
    parser.add_argument("--neurons", type=int, default=8, help="neurons per layer, spread over the layer")
    parser.add_argument("--strides", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--tolerance-check", action="store_true", help="the tolerance and python-picard check")
    args = parser.parse_args()
    settings = FitSettings()
    rows = []
    if args.tolerance_check:
        with threadpool_limits(limits=1):
            for layer in args.layers:
                reader = PatchReader(Path(args.run) / "patches" / f"{layer}.zarr")
                rows.append({"layer": layer, **tolerance_check(reader, args.neurons, settings)})
        print(pd.DataFrame(rows).to_markdown(index=False))
        return
    with threadpool_limits(limits=1):
        for layer in args.layers:
            reader = PatchReader(Path(args.run) / "patches" / f"{layer}.zarr")
            stats = layer_rows(reader, args.neurons, settings, args.strides)
            fits = max(1, stats["fits"])
            for v in ["other seed", *(f"stride {s}" for s in args.strides)]:
                rows.append({
                    "layer": layer, "variant": v, "fits": stats["fits"],
                    "current s": round(stats["current_s"], 2), "variant s": round(stats[f"{v}_s"], 2),
                    "variant / current": round(stats[f"{v}_s"] / stats["current_s"], 2),
                    "iterations current": round(stats["current_iter"] / fits, 1),
                    "iterations variant": round(stats[f"{v}_iter"] / fits, 1),
                    "same answer": f"{stats[f'{v}_same']}/{stats['fits']}",
                    "median worst |corr|": round(float(np.median(stats[f"{v}_worst"])), 3),
                    "components the same": f"{stats[f'{v}_components']}/{stats[f'{v}_of']}",
                    "lower loss": f"{stats[f'{v}_better']}/{stats['fits']}",
                })
            print(pd.DataFrame(rows[-1 - len(args.strides):]).to_markdown(index=False), flush=True)
    print()
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
