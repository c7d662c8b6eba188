"""Agreement of two extractions: hand-worked sets, Jaccard, argmax and MF against brute force."""

import numpy as np
import pytest

from neurofacets.agreement import compare_layer, counted_top_k, mean_mf, topk_set_agreement
from neurofacets.metrics import flatness, gini, mf_degree


def test_hand_worked_sets_and_jaccard():
    reference = np.array([[5, 0, 1], [4, 0, 1], [3, 0, 1], [2, 0, 0], [1, 0, 0]], dtype=np.float32)
    other = np.array([[5, 0, 1], [3, 0, 1], [4, 0, 1], [2, 0, 0], [1, 0, 2]], dtype=np.float32)
    identical, jaccard = topk_set_agreement(reference, other, k=2)
    # neuron 0: {0, 1} vs {0, 2}; neuron 1: dead in both (empty sets); neuron 2: the tie
    # 1, 1, 1 keeps images {0, 1} in the reference, image 4 (value 2) and image 0 in the other
    assert identical.tolist() == [False, True, False]
    np.testing.assert_allclose(jaccard, [1 / 3, 1.0, 1 / 3])
    assert counted_top_k(reference, 2)[1].sum() == 0
    with pytest.raises(ValueError, match="shapes differ"):
        topk_set_agreement(reference, other[:4], 2)


def test_only_positive_activations_count():
    reference = np.array([[2.0], [0.0], [0.0]])
    other = np.array([[2.0], [0.0], [0.0]])
    members = counted_top_k(reference, k=2)
    assert members.tolist() == [[True, False, False]]
    assert topk_set_agreement(reference, other, 2)[0].tolist() == [True]


def _brute_mean_mf(values, codes, n_columns, k):
    rows = []
    for c in range(values.shape[1]):
        order = sorted(range(values.shape[0]), key=lambda i: (-values[i, c], i))[:k]
        row = np.zeros(n_columns, dtype=np.int64)
        for i in order:
            if values[i, c] > 0:
                row[codes[i]] += 1
        rows.append(row)
    rows = np.array(rows)
    mf = mf_degree(gini(rows), flatness(rows))
    return np.mean(mf[np.isfinite(mf)])


def test_mean_mf_and_compare_layer_against_brute_force():
    rng = np.random.default_rng(0)
    values = np.maximum(rng.normal(size=(60, 7)), 0).astype(np.float32)
    values[:, 3] = 0  # a dead neuron is left out of the mean
    values[::3, 5] = values[0, 5]  # ties
    codes = rng.integers(0, 4, size=60)
    assert mean_mf(values, codes, 4, 10) == pytest.approx(_brute_mean_mf(values, codes, 4, 10))
    argmax = rng.integers(0, 9, size=values.shape).astype(np.int32)
    other = values.copy()
    other[0, 0] += 0.5
    other_argmax = argmax.copy()
    other_argmax[0, :2] += 1
    got = compare_layer("L", (values, argmax), (other, other_argmax), 10, codes, 4)
    live = values > 0
    assert got.max_rel_diff == pytest.approx(0.5 / values.max())
    assert got.argmax_equal == pytest.approx(1 - (live[0, :2]).sum() / live.sum())
    assert got.mean_mf_reference == pytest.approx(_brute_mean_mf(values, codes, 4, 10))
    assert got.mean_mf_change == pytest.approx(_brute_mean_mf(other, codes, 4, 10)
                                               - _brute_mean_mf(values, codes, 4, 10))
    same = compare_layer("L", (values, argmax), (values, argmax), 10)
    assert (same.topk_identical, same.mean_jaccard, same.argmax_equal, same.max_rel_diff) == (1, 1, 1, 0)
    with pytest.raises(ValueError, match="codes"):
        mean_mf(values, codes[:5], 4, 10)
