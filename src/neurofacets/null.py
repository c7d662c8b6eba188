"""Chance level of the layer summaries: the same statistics with the class labels permuted.

The top-k sets do not depend on the labels, so each permutation only re-labels the images
(class sizes kept, seeded), recounts CoF from the stored top-k and recomputes a layer's
mean MF degree and mean neuron similarity/dissimilarity. Permutation ``p`` uses the
generator ``numpy.random.default_rng([seed, p])`` for every layer and shuffles the computed
images' labels in content order (`neurofacets.cof.content_permuted`), so all layers see the
same relabelled datasets and the same photos get the same (renamed) labels whatever their
class folders are called.

Layer statistics (identical for the observed labels and each permutation):

- ``mean_mf``: mean of the finite MF degrees (dead and +inf left out);
- ``mean_similarity`` / ``mean_dissimilarity``: mean off-diagonal Pearson / Euclidean
  over the non-excluded neurons;
- ``n_dead``, ``n_excluded``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cof import LabelLevel, content_order, content_permuted, count_cof
from .metrics import flatness, gini, mf_degree
from .similarity import mean_off_diagonal, neuron_similarity
from .topk import TopK

STATISTICS = ("mean_mf", "mean_similarity", "mean_dissimilarity")


def layer_statistics(cof: np.ndarray) -> dict[str, float]:
    """The null model's statistics of one layer's CoF (see module docstring)."""
    mf = mf_degree(gini(cof), flatness(cof))
    finite = np.isfinite(mf)
    sim = neuron_similarity(cof)
    return {
        "mean_mf": float(mf[finite].mean()) if finite.any() else float("nan"),
        "mean_similarity": mean_off_diagonal(sim.pearson, sim.excluded),
        "mean_dissimilarity": mean_off_diagonal(sim.euclidean, sim.excluded),
        "n_dead": int(np.isnan(mf).sum()),
        "n_excluded": sim.n_excluded,
    }


def null_table(topk: TopK, level: LabelLevel, n_permutations: int, seed: int, image_id: np.ndarray,
               content_key: np.ndarray) -> pd.DataFrame:
    """Observed statistics (``permutation`` -1) and one row per label permutation.

    Parameters
    ----------
    topk
        The layer's top-k sets.
    level
        The true labels at the analysed level.
    n_permutations
        Number of permutations (0: only the observed row).
    seed
        Seed of the permutations.
    image_id, content_key
        Every computed image's id and content key (`neurofacets.store.read_image_keys`): the
        labels are permuted among these images, in content order.
    """
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
    order = content_order(content_key, image_id)
    rows = [{"layer": topk.layer, "permutation": -1, **layer_statistics(count_cof(topk, level))}]
    for p in range(n_permutations):
        shuffled = content_permuted(level, image_id, order, np.random.default_rng([seed, p]))
        rows.append({"layer": topk.layer, "permutation": p, **layer_statistics(count_cof(topk, shuffled))})
    return pd.DataFrame(rows)


def null_summary_table(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Per layer: each statistic observed, its mean and std (ddof=1) under permutation, z.

    ``z = (observed - null_mean) / null_std`` (NaN with fewer than 2 permutations).
    """
    if not tables:
        raise ValueError("no null tables given")
    out = []
    for table in tables:
        layers = table["layer"].unique()
        if len(layers) != 1:
            raise ValueError(f"a null table must hold one layer, got {list(layers)}")
        observed = table[table["permutation"] == -1]
        null = table[table["permutation"] >= 0]
        if len(observed) != 1:
            raise ValueError(f"layer {layers[0]}: expected one observed row, got {len(observed)}")
        row: dict[str, object] = {"layer": layers[0], "n_permutations": len(null)}
        for stat in STATISTICS:
            obs = float(observed[stat].iloc[0])
            values = null[stat].to_numpy(np.float64)
            values = values[np.isfinite(values)]
            mean = float(values.mean()) if len(values) else float("nan")
            std = float(values.std(ddof=1)) if len(values) >= 2 else float("nan")
            row[f"observed_{stat}"] = obs
            row[f"null_{stat}"] = mean
            row[f"null_std_{stat}"] = std
            row[f"z_{stat}"] = (obs - mean) / std if std > 0 else float("nan")
        out.append(row)
    return pd.DataFrame(out)
