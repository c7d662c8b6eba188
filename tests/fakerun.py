"""Fabricate a small but internally consistent ``results/<run>`` tree for the figure tests.

The tree holds every file the figures, gallery and summary stages read (see docs/design.md §2):
``model/layers.csv``, ``metrics/{layer}.csv``, ``metrics/all_layers.csv``,
``similarity/{layer}.zarr``, ``similarity/summary.csv``, ``patches/{layer}.zarr``,
``ica/{layer}.zarr`` and the evaluation stage's ``evaluation/{layer}.csv``,
``evaluation/all_layers.csv`` and ``evaluation/summary.csv``, made-up bootstrap draws
(``bootstrap/summary_draws.csv``) and ``summary.csv`` with their intervals. The metrics are computed from
random CoF rows with the definitions of docs/methods.md, written out independently of the
package so the tests do not need the upstream pipeline. The evaluation's per-neuron scores are
fabricated (plausible, not computed: sparser neurons score higher), in the real column lists;
its all-layers table and summary are written by the package's own
:func:`neurofacets.evaluation.evaluation_summary`.
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

from neurofacets.datasets import CAPPED_REASON
from neurofacets.evaluation import evaluation_summary
from neurofacets.ica import STATUS_CODE, FitSettings, write_ica_store
from neurofacets.metrics import all_layers_table
from neurofacets.readers import (
    EVALUATION_COLUMNS,
    EVALUATION_CONCEPT_COLUMNS,
    EVALUATION_HEADLINE_COLUMNS,
    SUMMARY_DRAWS_COLUMNS,
    SUMMARY_HEADLINE_COLUMNS,
)
from neurofacets.summary import write_summary

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
    evaluation: pd.DataFrame | None = None  # evaluation/all_layers.csv as written
    k: int = 6
    n_comp: int = 3

    def path(self, relative: str) -> Path:
        return self.out / relative


def gini(row: np.ndarray) -> float:
    """docs/methods.md Gini index of one CoF row (NaN for an all-zero row)."""
    total = row.sum()
    if total == 0:
        return float("nan")
    n = len(row)
    c = np.sort(row) / total
    k = np.arange(1, n + 1)
    return float(1 - 2 * np.sum(c * (n - k + 0.5) / n))


def flatness(row: np.ndarray) -> float:
    """docs/methods.md flatness (paper eq. 1) of one CoF row (-1 for an all-zero row)."""
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


def _evaluation_table(rng: np.random.Generator, layer: str, cof: np.ndarray, classes: Sequence[str],
                      concepts: bool) -> pd.DataFrame:
    """A fabricated ``evaluation/{layer}.csv``: sparser neurons get higher held-out scores and smaller
    selectivity p-values; dead neurons (all-zero CoF row) have no scores. Neuron 0's label holds and
    neuron 1's does not, in every layer, so both kinds are always there."""
    n = len(cof)
    alive = cof.sum(axis=1) > 0
    sparsity = np.array([gini(row) if a else np.nan for row, a in zip(cof, alive)])
    dead_nan = np.where(alive, 1.0, np.nan)

    def scores(signal: np.ndarray, prefix: str = "") -> dict[str, np.ndarray]:
        chance = 0.5 + rng.normal(0, 0.01, n)
        auroc = np.clip(0.5 + 0.45 * signal + rng.normal(0, 0.05, n), 0, 1)
        auroc[0], auroc[1] = 0.93, 0.52
        columns = {"auroc": auroc, "auroc_chance": chance, "auroc_chance_p95": chance + 0.1,
                   "auprc": np.clip(0.2 + 0.6 * signal, 0, 1), "auprc_chance": np.full(n, 0.2),
                   "auprc_chance_p95": np.full(n, 0.3),
                   "correlation": 0.5 * signal, "correlation_chance": rng.normal(0, 0.01, n),
                   "correlation_chance_p95": np.full(n, 0.08)}
        return {f"{prefix}{name}": values * dead_nan for name, values in columns.items()}

    def top_classes(row: np.ndarray) -> str:
        order = sorted(np.flatnonzero(row), key=lambda c: (-row[c], c))[:5]
        return json.dumps([classes[c] for c in order], ensure_ascii=False)

    halves = [rng.binomial(cof, 0.5) for _ in range(2)]
    mf = np.array([flatness(row) / gini(row) if a else np.nan for row, a in zip(cof, alive)])
    # the even neurons are selective, the odd ones mostly not
    p = np.where(np.arange(n) % 2 == 0, 0.001 + 0.01 * (1 - sparsity), rng.uniform(0.02, 1, n)) * dead_nan
    p_permuted = np.where(alive, rng.uniform(0.001, 1, n), np.nan)
    table = pd.DataFrame({
        "layer": layer, "neuron": np.arange(n),
        "n_counted_0": halves[0].sum(axis=1), "n_counted_1": halves[1].sum(axis=1),
        "top_classes_0": [top_classes(row) for row in halves[0]],
        "top_classes_1": [top_classes(row) for row in halves[1]],
        **scores(sparsity),
    })
    label_p = np.where(table["auroc"] > table["auroc_chance_p95"], 0.0005, rng.uniform(0.06, 1, n)) * dead_nan
    table["label_p"], table["label_q"] = label_p, _bh(label_p)
    table["label_holds"] = table["label_q"] < 0.05
    table["mf_0"] = mf * np.exp(rng.normal(0, 0.1, n))
    table["mf_1"] = mf * np.exp(rng.normal(0, 0.1, n))
    table["class_jaccard"] = rng.uniform(0.2, 1.0, n) * dead_nan
    table["selectivity_p"], table["selectivity_q"] = p, _bh(p)
    table["selectivity_p_permuted"], table["selectivity_q_permuted"] = p_permuted, _bh(p_permuted)
    if concepts:
        named = rng.random((2, n)) < 0.6
        table["concept_0"] = np.where(alive & named[0], "animal.n.01", "")
        table["concept_1"] = np.where(alive & named[1], rng.choice(["animal.n.01", "dog.n.01", "car.n.01"], n), "")
        for name, values in scores(sparsity * 0.8, "concept_").items():
            table[name] = values
        concept_p = np.where(table["concept_auroc"] > table["concept_auroc_chance_p95"], 0.0005,
                             rng.uniform(0.06, 1, n)) * dead_nan
        table["concept_p"], table["concept_q"] = concept_p, _bh(concept_p)
        table["concept_holds"] = table["concept_q"] < 0.05
        both = (table["concept_0"] != "") & (table["concept_1"] != "")
        table["concept_agrees"] = np.where(both, (table["concept_1"] != "car.n.01").astype(float), np.nan)
        for h in (0, 1):
            table[f"semantic_facet_{h}"] = np.where(
                ~alive, "dead", np.where(table[f"concept_{h}"] != "", "concept", rng.choice(["SF", "MF"], n)))
    columns = [*EVALUATION_COLUMNS, *(EVALUATION_CONCEPT_COLUMNS if concepts else ())]
    assert sorted(columns) == sorted(table.columns)
    return table[columns]


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
    evaluation_concepts: bool = True,
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
    evaluation_concepts
        Whether the evaluation tables have the concept columns (a run with a class hierarchy).
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

    tables, summary_rows, evaluation_csvs = [], [], []
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
        for row in cof:  # docs/methods.md: a JSON list of the 5 largest [name, count] pairs
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
        (out / "evaluation").mkdir(parents=True, exist_ok=True)
        evaluation_csvs.append(out / "evaluation" / f"{name}.csv")
        _evaluation_table(rng, name, cof, classes, evaluation_concepts).to_csv(evaluation_csvs[-1], index=False)

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
    draws_csv = _fake_draws(rng, out, run, names)
    evaluation_summary(evaluation_csvs, names, "global_mean", run, out / "evaluation" / "all_layers.csv",
                       out / "evaluation" / "summary.csv", draws_csv)
    fake.evaluation = pd.read_csv(out / "evaluation" / "all_layers.csv")
    # the tables summary.csv counts the images from (readers.read_image_counts): without them a
    # workflow call on the fake run would rebuild the dataset and extraction
    counted = dataset_tables(out / "dataset")
    (out / "activations").mkdir(parents=True, exist_ok=True)
    counted["extraction_skipped_csv"].replace(out / "activations" / "skipped.csv")
    write_summary(out / "metrics" / "all_layers.csv", out / "similarity" / "summary.csv", out / "model" / "layers.csv",
                  out / "summary.csv", run, images_csv=counted["images_csv"],
                  dataset_skipped_csv=counted["dataset_skipped_csv"],
                  extraction_skipped_csv=out / "activations" / "skipped.csv", draws_csv=draws_csv)
    return fake


def _fake_draws(rng: np.random.Generator, out: Path, run: str, layers: Sequence[str], draws: int = 20) -> Path:
    """``bootstrap/summary_draws.csv`` of made-up resamples (values spread in [0, 1]): the
    summaries' intervals, so that the figures draw them."""
    numbers = [*SUMMARY_HEADLINE_COLUMNS, *EVALUATION_HEADLINE_COLUMNS]
    table = pd.DataFrame([{"run": run, "layer": layer, "draw": b,
                           **dict(zip(numbers, rng.uniform(0.3, 0.7, len(numbers))))}
                          for layer in layers for b in range(draws)], columns=list(SUMMARY_DRAWS_COLUMNS))
    path = out / "bootstrap" / "summary_draws.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


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
        "evaluation_summary": out / "evaluation" / "summary.csv",
        "evaluation": out / "evaluation" / "all_layers.csv",
        "summary": out / "summary.csv",
    }


def dataset_tables(folder: Path, n_images: int = 10, n_refused: int = 0, n_capped: int = 0,
                   failed: Sequence[int] = ()) -> dict[str, Path]:
    """images.csv, dataset/skipped.csv and activations/skipped.csv of a made-up run, as the keyword
    arguments of :func:`neurofacets.summary.write_summary`: ``n_refused`` refused files and
    ``n_capped`` images over the cap in the dataset's skipped table, ``failed`` decoding failures."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": range(n_images), "path": [f"c/{i}.png" for i in range(n_images)],
                  "label": 0, "class_name": "c", "shard": 0}).to_csv(folder / "images.csv", index=False)
    pd.DataFrame({"path": [f"x/{i}" for i in range(n_refused + n_capped)], "class_id": "c",
                  "reason": ["empty file"] * n_refused + [CAPPED_REASON] * n_capped}
                 ).to_csv(folder / "skipped.csv", index=False)
    pd.DataFrame({"image_id": list(failed), "path": [f"c/{i}.png" for i in failed], "reason": "unreadable image"}
                 ).to_csv(folder / "decode_skipped.csv", index=False)
    return {"images_csv": folder / "images.csv", "dataset_skipped_csv": folder / "skipped.csv",
            "extraction_skipped_csv": folder / "decode_skipped.csv"}
