"""How far two extractions of the same images agree (another precision, decoder or device).

For one layer, given the reference (e.g. CPU fp32) and the other run's (images x channels)
spatial max and argmax:

- the largest difference of the max values, relative to the layer's largest reference value;
- the fraction of (image, channel) entries whose argmax is the same, among those where the
  reference is positive (a silent channel's argmax is 0 by convention);
- per neuron, whether its *counted* top-k set (the images that enter the CoF: the top k by
  the tie rule of [`neurofacets.topk`][], activation > 0) is identical, and the Jaccard
  index of the two sets (1 for two empty sets);
- with class labels, the layer's mean MF degree of both runs (docs/methods.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import flatness, gini, mf_degree
from .topk import top_k_indices


@dataclass(frozen=True)
class LayerAgreement:
    """Agreement of one layer; see the module docstring for each quantity."""

    layer: str
    max_rel_diff: float
    argmax_equal: float
    topk_identical: float
    mean_jaccard: float
    mean_mf_reference: float
    mean_mf_other: float

    @property
    def mean_mf_change(self) -> float:
        return self.mean_mf_other - self.mean_mf_reference


def counted_top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Boolean (channels, images): image i is in neuron c's counted top-k set."""
    values = np.asarray(values)
    k = min(k, values.shape[0])
    idx = top_k_indices(values, k)
    channel = np.arange(values.shape[1])[:, None]
    members = np.zeros((values.shape[1], values.shape[0]), dtype=bool)
    counted = values[idx, channel] > 0
    members[np.broadcast_to(channel, idx.shape)[counted], idx[counted]] = True
    return members


def topk_set_agreement(reference: np.ndarray, other: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron: counted top-k set identical (bool) and Jaccard index (float).

    Parameters
    ----------
    reference, other
        (images, channels) spatial max of the same images in the same order.
    k
        Requested top-k (``min(k, images)`` are taken).
    """
    if reference.shape != other.shape:
        raise ValueError(f"shapes differ: {reference.shape} and {other.shape}")
    a, b = counted_top_k(reference, k), counted_top_k(other, k)
    union = (a | b).sum(axis=1)
    jaccard = np.where(union > 0, (a & b).sum(axis=1) / np.maximum(union, 1), 1.0)
    return (a == b).all(axis=1), jaccard


def mean_mf(values: np.ndarray, codes: np.ndarray, n_columns: int, k: int) -> float:
    """Mean MF degree of a layer's live, finite neurons from its counted top-k CoF.

    ``codes``: (images,) class column of each image row, in ``0..n_columns-1``.
    """
    codes = np.asarray(codes)
    if codes.shape != (values.shape[0],) or codes.min() < 0 or codes.max() >= n_columns:
        raise ValueError(f"codes must be (images,) = ({values.shape[0]},) in [0, {n_columns})")
    members = counted_top_k(values, k)
    cof = np.stack([np.bincount(codes[row], minlength=n_columns) for row in members])
    mf = mf_degree(gini(cof), flatness(cof))
    mf = mf[np.isfinite(mf)]
    return float(mf.mean()) if mf.size else float("nan")


def compare_layer(layer: str, reference: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray],
                  k: int, codes: np.ndarray | None = None, n_columns: int | None = None) -> LayerAgreement:
    """Agreement of one layer's ``(max, argmax)`` pair with the reference pair."""
    ref_max, ref_arg = (np.asarray(a) for a in reference)
    oth_max, oth_arg = (np.asarray(a) for a in other)
    if ref_max.shape != oth_max.shape or ref_arg.shape != oth_arg.shape:
        raise ValueError(f"layer {layer}: shapes differ: {ref_max.shape} and {oth_max.shape}")
    scale = float(np.abs(ref_max).max()) or 1.0
    live = ref_max > 0
    identical, jaccard = topk_set_agreement(ref_max, oth_max, k)
    mf_ref = mf_oth = float("nan")
    if codes is not None:
        if n_columns is None:
            raise ValueError("n_columns is needed with codes")
        mf_ref, mf_oth = mean_mf(ref_max, codes, n_columns, k), mean_mf(oth_max, codes, n_columns, k)
    return LayerAgreement(
        layer=layer,
        max_rel_diff=float(np.abs(oth_max.astype(np.float64) - ref_max).max() / scale),
        argmax_equal=float((ref_arg == oth_arg)[live].mean()) if live.any() else 1.0,
        topk_identical=float(identical.mean()),
        mean_jaccard=float(jaccard.mean()),
        mean_mf_reference=mf_ref,
        mean_mf_other=mf_oth,
    )
