"""Fabricate a small but internally consistent ``results/<run>`` tree for the figure tests.

The tree holds every file the figures, gallery and summary stages read (see docs/design.md §2):
``model/layers.csv``, ``metrics/{layer}.csv``, ``metrics/all_layers.csv``,
``similarity/{layer}.zarr``, ``similarity/summary.csv``, ``patches/{layer}.zarr`` and
``ica/{layer}.zarr``. The metrics are computed from random CoF rows with the definitions
of docs/design.md §3, written out independently of the package so the tests do not need the
upstream pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from scipy import stats


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of the finite p-values (NaN kept)."""
    q = np.full(len(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = stats.false_discovery_control(np.asarray(p)[finite])
    return q

from neurofacets.ica import STATUS_CODE, FitSettings, write_ica_store
from neurofacets.metrics import all_layers_table

CLASS_NAMES = [f"class{i:02d}" for i in range(12)]

# (name, neurons, rf) in network order; small but with different sizes per layer.
DEFAULT_LAYERS: tuple[tuple[str, int, int], ...] = (
    ("conv1_1", 6, 3),
    ("conv1_2", 8, 5),
    ("conv2_1", 10, 10),
)


@dataclass
class FakeRun:
    """Paths and ground truth of a fabricated run."""

    root: Path  # the repository-like root that holds results/
    run: str
    out: Path  # root / "results" / run
    layers: list[str]
    cof: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> (neurons, classes)
    metrics: pd.DataFrame | None = None  # all_layers.csv as written
    k: int = 6
    n_comp: int = 3

    def path(self, relative: str) -> Path:
        return self.out / relative


def gini(row: np.ndarray) -> float:
    """docs/design.md §3 Gini index of one CoF row (NaN for an all-zero row)."""
    total = row.sum()
    if total == 0:
        return float("nan")
    n = len(row)
    c = np.sort(row) / total
    k = np.arange(1, n + 1)
    return float(1 - 2 * np.sum(c * (n - k + 0.5) / n))


def flatness(row: np.ndarray) -> float:
    """docs/design.md §3 flatness (paper eq. 1) of one CoF row (-1 for an all-zero row)."""
    if row.sum() == 0:
        return -1.0
    p = (row + 1e-7) / np.sum(row + 1e-7)
    h = -np.sum(p * np.log2(p)) / np.log2(len(row))
    return float(2**h - 1)


def _cof_rows(rng: np.random.Generator, neurons: int, k: int, n_classes: int, depth: float) -> np.ndarray:
    """Random CoF rows: deeper layers draw their top-k images from fewer classes."""
    rows = np.zeros((neurons, n_classes), dtype=np.int64)
    for n in range(neurons):
        n_pref = max(1, int(round(n_classes * (1 - depth) * rng.uniform(0.3, 1.0))))
        pref = rng.choice(n_classes, size=n_pref, replace=False)
        counted = k if n % 4 else k - 2  # some neurons have fewer than k positive images
        np.add.at(rows[n], rng.choice(pref, size=counted), 1)
    return rows


def _p_values(mf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided tail of each MF under a normal fitted to the other neurons of the layer."""
    p_norm = np.full(len(mf), np.nan)
    p_emp = np.full(len(mf), np.nan)
    for i, value in enumerate(mf):
        if np.isnan(value):
            continue
        others = np.delete(mf, i)
        others = others[~np.isnan(others)]
        if len(others) < 2:
            continue
        mu, sd = others.mean(), others.std(ddof=1)
        upper = value >= mu
        p_norm[i] = stats.norm.sf(value, mu, sd) if upper else stats.norm.cdf(value, mu, sd)
        p_emp[i] = np.mean(others >= value) if upper else np.mean(others <= value)
    return p_norm, p_emp


def _similarity(cof: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    excluded = cof.std(axis=1) == 0
    n = len(cof)
    pearson = np.full((n, n), np.nan)
    euclidean = np.full((n, n), np.nan)
    keep = np.flatnonzero(~excluded)
    rows = cof[keep].astype(float)
    pearson[np.ix_(keep, keep)] = np.corrcoef(rows)
    diff = rows[:, None, :] - rows[None, :, :]
    euclidean[np.ix_(keep, keep)] = np.sqrt((diff**2).sum(-1))
    return pearson, euclidean, excluded


def make_fake_run(
    root: str | Path,
    run: str = "fake",
    layers: Sequence[tuple[str, int, int]] = DEFAULT_LAYERS,
    *,
    k: int = 6,
    n_comp: int = 3,
    n_classes: int = 10,
    dead: Sequence[tuple[str, int]] = (("conv2_1", 3),),
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> FakeRun:
    """Write a fake ``root/results/<run>`` tree and return its paths and ground truth.

    Parameters
    ----------
    root
        Folder that plays the repository root (``results/`` is created inside).
    layers
        ``(name, neurons, rf)`` per layer in network order.
    k, n_comp, n_classes
        Top-k size, ICs per neuron, number of classes.
    dead
        ``(layer, neuron)`` pairs whose CoF row is all zero (dead neurons).
    class_names
        The class names (default ``class00``, ``class01``, ...; ``n_classes`` of them).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    out = root / "results" / run
    names = [name for name, _, _ in layers]
    fake = FakeRun(root=root, run=run, out=out, layers=names, k=k, n_comp=n_comp)
    classes = list(class_names)[:n_classes] if class_names is not None else CLASS_NAMES[:n_classes]
    attrs = {"neurofacets_version": "test", "model": "fake", "weights": "random:0"}

    (out / "model").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "layer": names,
            "module": [f"features.{i}" for i in range(len(names))],
            "channels": [n for _, n, _ in layers],
            "height": [32 // (i + 1) for i in range(len(names))],
            "width": [32 // (i + 1) for i in range(len(names))],
            "rf": [rf for _, _, rf in layers],
            "jump": [1] * len(names),
            "start": [0.0] * len(names),
        }
    ).to_csv(out / "model" / "layers.csv", index=False)

    tables, summary_rows = [], []
    for depth_index, (name, neurons, rf) in enumerate(layers):
        depth = depth_index / max(1, len(layers) - 1) * 0.8
        cof = _cof_rows(rng, neurons, k, n_classes, depth)
        for layer_name, neuron in dead:
            if layer_name == name:
                cof[neuron] = 0
        fake.cof[name] = cof
        n_counted = cof.sum(axis=1)
        sparsity = np.array([gini(r) for r in cof])
        flat = np.array([flatness(r) for r in cof])
        mf = np.where(n_counted > 0, flat / sparsity, np.nan)
        p_norm, p_emp = _p_values(mf)
        top = []
        for row in cof:  # docs/design.md §3: a JSON list of the 5 largest [name, count] pairs
            order = sorted(np.flatnonzero(row), key=lambda c: (-row[c], c))[:5]
            top.append(json.dumps([[classes[c], int(row[c])] for c in order], ensure_ascii=False))
        table = pd.DataFrame(
            {
                "layer": name,
                "neuron": np.arange(neurons),
                "n_counted": n_counted,
                "sparsity": sparsity,
                "flatness": flat,
                "mf": mf,
                "p_value": p_norm,
                "q_value": _bh(p_norm),
                "p_empirical": p_emp,
                "q_empirical": _bh(p_emp),
                "top_classes": top,
            }
        )
        (out / "metrics").mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "metrics" / f"{name}.csv", index=False)
        tables.append(table)

        pearson, euclidean, excluded = _similarity(cof)
        ds = xr.Dataset(
            {
                "pearson": (("neuron_i", "neuron_j"), pearson),
                "euclidean": (("neuron_i", "neuron_j"), euclidean),
                "excluded": (("neuron_i",), excluded),
            },
            coords={"neuron_i": np.arange(neurons), "neuron_j": np.arange(neurons)},
            attrs={**attrs, "layer": name},
        )
        (out / "similarity").mkdir(parents=True, exist_ok=True)
        ds.to_zarr(out / "similarity" / f"{name}.zarr", zarr_format=3, mode="w", consolidated=False)
        off = ~np.eye(neurons, dtype=bool) & ~excluded[:, None] & ~excluded[None, :]
        summary_rows.append(
            {
                "layer": name,
                "mean_similarity": float(pearson[off].mean()),
                "mean_dissimilarity": float(euclidean[off].mean()),
                "n_excluded": int(excluded.sum()),
            }
        )

        patches = rng.integers(0, 256, size=(neurons, k, rf, rf, 3), dtype=np.uint8)
        patches[np.arange(k)[None, :] >= n_counted[:, None]] = 0  # slots beyond n_counted hold no patch
        patch_path = out / "patches" / f"{name}.zarr"
        group = zarr.open_group(str(patch_path), mode="w", zarr_format=3)
        group.create_array("patches", shape=patches.shape, chunks=(1, k, rf, rf, 3), dtype="uint8")[:] = patches
        group.create_array("n_counted", shape=(neurons,), dtype="int64")[:] = n_counted
        group.attrs.update({**attrs, "layer": name, "rf": rf, "k": k, "layout": "patches", "created": f"fake {name}"})

        # the real ICA of these patches; dead neurons have too few patches for a fit. Then,
        # fabricated: neuron 1 of every layer did not converge in the red fit.
        ica_path = out / "ica" / f"{name}.zarr"
        write_ica_store(ica_path, patch_path, FitSettings(n_components=n_comp, max_iter=100, seed=0),
                        attrs={**attrs, "layer": name})
        group = zarr.open_group(str(ica_path), mode="r+")
        status = group["status"][:]
        status[1, 1] = STATUS_CODE["not_converged"]
        group["status"][:] = status

    everything = all_layers_table(tables, "global_mean")
    everything.to_csv(out / "metrics" / "all_layers.csv", index=False)
    fake.metrics = everything
    pd.DataFrame(summary_rows).to_csv(out / "similarity" / "summary.csv", index=False)
    return fake


def figure_inputs(fake) -> dict:
    """The inputs the figure functions read, as the figure rules name them, for a fake run."""
    out = fake.out
    return {
        "metrics": out / "metrics" / "all_layers.csv",
        "layers": out / "model" / "layers.csv",
        "ica": [out / "ica" / f"{name}.zarr" for name in fake.layers],
        "patches": [out / "patches" / f"{name}.zarr" for name in fake.layers],
        "similarity": [out / "similarity" / f"{name}.zarr" for name in fake.layers],
        "similarity_summary": out / "similarity" / "summary.csv",
    }
