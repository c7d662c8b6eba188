"""Gini sparsity, flatness, MF degree, p-values and facets against hand-worked values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from neurofacets.metrics import (
    all_layers_table,
    dead_rows,
    facet_threshold,
    facets,
    flatness,
    gini,
    layer_metrics_table,
    leave_one_out_p_values,
    mf_degree,
    normalise_mf,
    top_classes,
)
from neurofacets.readers import parse_top_classes

N_CLASSES = 1000


def hand_worked_rows() -> np.ndarray:
    """k = 100 top images over 1000 classes: 100 distinct classes, one class, 50 classes x 2."""
    rows = np.zeros((3, N_CLASSES), dtype=np.int64)
    rows[0, :100] = 1
    rows[1, 0] = 100
    rows[2, :50] = 2
    return rows


def test_gini_hand_worked():
    # G = 1 - 2 sum (c_k/|c|)(N - k + 1/2)/N: e.g. 100 ones -> 1 - 2 * 0.01 * 5000 / 1000 = 0.9
    np.testing.assert_allclose(gini(hand_worked_rows()), [0.9000, 0.9990, 0.9500], atol=1e-12)


def test_gini_invariances():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 7, size=(20, 30))
    g = gini(rows)
    np.testing.assert_allclose(gini(rows * 13), g, atol=1e-12)  # scale (integer)
    np.testing.assert_allclose(gini(rows * 0.37), g, atol=1e-12)  # scale (float path)
    permuted = rows[:, rng.permutation(30)]
    np.testing.assert_allclose(gini(permuted), g, atol=1e-12)
    assert np.all((g >= 0) & (g <= 1 - 1 / 30 + 1e-12))


def test_gini_extremes():
    even = np.full((1, 8), 5)
    assert gini(even)[0] == 0.0  # exactly, not a rounding residue
    one_hot = np.zeros((1, 8))
    one_hot[0, 3] = 2.5
    assert gini(one_hot)[0] == pytest.approx(1 - 1 / 8)


def test_flatness_hand_worked():
    f = flatness(hand_worked_rows())
    # 100 distinct: H = log2(100)/log2(1000) = 2/3 -> 2^(2/3) - 1; 50 x 2: log2(50)/log2(1000).
    np.testing.assert_allclose(f[[0, 2]], [0.5874, 0.4807], atol=5e-5)
    np.testing.assert_allclose(f[0], 2 ** (2 / 3) - 1, atol=1e-5)
    np.testing.assert_allclose(f[2], 2 ** (math.log2(50) / math.log2(1000)) - 1, atol=1e-5)
    assert 0 <= f[1] < 1e-5  # one class: ~0


def test_flatness_is_exactly_permutation_invariant():
    rng = np.random.default_rng(5)
    row = rng.multinomial(100, np.full(1000, 1e-3))  # 100 top images over 1000 classes
    rows = np.stack([row] + [row[rng.permutation(1000)] for _ in range(20)])
    f = flatness(rows)
    assert np.all(f == f[0])  # bit-identical, so equal MF values stay tied in ranks
    mf = mf_degree(gini(rows), f)
    assert np.all(mf == mf[0])


def test_flatness_against_scipy_entropy():
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 5, size=(10, 40))
    rows[:, 0] += 1  # no dead rows here
    expected = [2 ** (stats.entropy(r + 1e-7, base=2) / math.log2(40)) - 1 for r in rows]
    np.testing.assert_allclose(flatness(rows), expected, rtol=1e-12)
    assert flatness(np.full((1, 40), 3))[0] == pytest.approx(1.0)


def test_mf_hand_worked():
    rows = hand_worked_rows()
    mf = mf_degree(gini(rows), flatness(rows))
    np.testing.assert_allclose(mf[[0, 2]], [0.653, 0.506], atol=5e-4)
    assert 0 <= mf[1] < 1e-5


def test_dead_rows():
    rows = np.zeros((3, 10), dtype=np.int64)
    rows[1, 4] = 3
    assert dead_rows(rows).tolist() == [True, False, True]
    g, f = gini(rows), flatness(rows)
    assert np.isnan(g[[0, 2]]).all() and f[0] == -1 and f[2] == -1
    mf = mf_degree(g, f)
    assert np.isnan(mf[[0, 2]]).all() and np.isfinite(mf[1])
    assert facets(mf, np.full(3, 0.1)).tolist() == ["dead", "SF", "dead"]
    table = layer_metrics_table("conv1_1", rows, [f"c{i}" for i in range(10)])
    dead = table.iloc[[0, 2]]
    assert dead["flatness"].eq(-1).all()
    assert dead[["sparsity", "mf", "p_value", "p_empirical"]].isna().all().all()
    assert dead["n_counted"].eq(0).all() and dead["top_classes"].eq("[]").all()


def test_even_row_has_infinite_mf():
    rows = np.array([[2, 2, 2, 2], [4, 0, 0, 0], [3, 1, 0, 0]])
    mf = mf_degree(gini(rows), flatness(rows))
    assert mf[0] == np.inf and np.isfinite(mf[1:]).all()
    assert facets(mf, np.full(3, 1e9))[0] == "MF"


def loop_p_values(mf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent: per neuron, fit the others with numpy/scipy and read the tail."""
    p, pe = np.full(len(mf), np.nan), np.full(len(mf), np.nan)
    for i, x in enumerate(mf):
        if np.isnan(x):
            continue
        others = np.delete(mf, i)
        others = others[~np.isnan(others)]
        finite = others[np.isfinite(others)]
        mean, std = finite.mean(), finite.std(ddof=1)
        dist = stats.norm(loc=mean, scale=std)
        upper = x > mean
        p[i] = dist.sf(x) if upper else dist.cdf(x)
        pe[i] = np.mean(others >= x) if upper else np.mean(others <= x)
    return p, pe


def test_p_values_against_scipy():
    rng = np.random.default_rng(2)
    mf = rng.gamma(2.0, 0.1, size=50)
    mf[[3, 17]] = np.nan  # dead
    mf[8] = mf[9]  # a tie
    p, pe = leave_one_out_p_values(mf)
    ep, epe = loop_p_values(mf)
    np.testing.assert_allclose(p, ep, rtol=1e-9, atol=1e-14)
    np.testing.assert_array_equal(np.isnan(p), np.isnan(mf))
    np.testing.assert_allclose(pe, epe, rtol=0, atol=1e-15)
    # One-sided tails are at most 1/2; the most extreme neuron has the smallest p.
    assert np.nanmax(p) <= 0.5
    assert np.nanargmin(p) in (np.nanargmax(mf), np.nanargmin(mf))


def test_p_values_with_an_infinite_mf():
    rng = np.random.default_rng(3)
    mf = rng.random(12)
    mf[4] = np.inf
    mf[5] = np.nan
    p, pe = leave_one_out_p_values(mf)
    ep, epe = loop_p_values(mf)
    np.testing.assert_allclose(p, ep, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(pe, epe, atol=1e-15)
    assert p[4] == 0.0 and pe[4] == 0.0


def test_p_values_undefined_with_too_few_neurons():
    p, pe = leave_one_out_p_values(np.array([0.3, np.nan]))
    assert np.isnan(p).all() and np.isnan(pe).all()
    p, pe = leave_one_out_p_values(np.array([0.3, 0.5, 0.5]))
    assert np.isnan(p[0])  # the others are equal: no spread to fit
    assert pe[0] == 0.0  # 0.3 is below the others' mean 0.5: lower tail, no other is <= 0.3
    assert pe[1] == 0.5  # 0.5 is above the others' mean 0.4: upper tail, one of two others >= 0.5


def test_top_classes_order_and_ties():
    rows = np.array([[0, 3, 1, 3, 0, 2, 1, 1], [0] * 8])
    names = [f"c{i}" for i in range(8)]
    # the 5th largest count is 1: every class counted once is in (six classes listed)
    assert top_classes(rows, names) == ['[["c1", 3], ["c3", 3], ["c5", 2], ["c2", 1], ["c6", 1], ["c7", 1]]', "[]"]
    assert top_classes(rows, names, n=2) == ['[["c1", 3], ["c3", 3]]', "[]"]
    assert top_classes(rows, names, n=3) == ['[["c1", 3], ["c3", 3], ["c5", 2]]', "[]"]
    # equal counts are listed by name, not by class index
    assert top_classes(rows, ["z", "y", "x", "w", "v", "u", "t", "s"]) == [
        '[["w", 3], ["y", 3], ["u", 2], ["s", 1], ["t", 1], ["x", 1]]', "[]"]


@pytest.mark.parametrize("name", ["a;b", "a:b", "a:1;b:2", "<script>alert(1)</script>", 'say "hi", then', "café ☕ 日本",
                                  "", "NA", "null", "[]", "line\nbreak", "$5 bill", "back\\slash"])
def test_top_classes_carry_any_class_name(name):
    rows = np.array([[4, 2, 0], [0, 0, 0]])
    cell, dead = top_classes(rows, [name, "other", "x"])
    assert parse_top_classes(cell) == [(name, 4), ("other", 2)] and parse_top_classes(dead) == []


def test_parse_top_classes_empty_cells_and_bad_text():
    assert parse_top_classes(np.nan) == [] and parse_top_classes("") == [] and parse_top_classes("[]") == []
    for bad in ("cat:12;dog:3", '[["cat", "12"]]', '[["cat"]]', "{}", '[["cat", true]]'):
        with pytest.raises(ValueError, match="JSON list of"):
            parse_top_classes(bad)


def test_normalise_mf():
    mf = np.array([0.2, np.nan, 0.6, np.inf, 0.4])
    np.testing.assert_allclose(normalise_mf(mf), [0.0, np.nan, 1.0, 1.0, 0.5])


def test_facet_thresholds():
    mf = np.array([0.1, 0.5, np.nan, 0.9, 0.2, np.inf])
    layers = np.array(["a", "a", "a", "b", "b", "b"])
    np.testing.assert_allclose(facet_threshold(mf, layers, "global_mean"), np.full(6, np.mean([0.1, 0.5, 0.9, 0.2])))
    np.testing.assert_allclose(facet_threshold(mf, layers, "layer_mean"), [0.3, 0.3, 0.3, 0.55, 0.55, 0.55])
    np.testing.assert_allclose(facet_threshold(mf, layers, 0.45), np.full(6, 0.45))
    with pytest.raises(ValueError, match="facet_threshold"):
        facet_threshold(mf, layers, "median")
    assert facets(mf, facet_threshold(mf, layers, "layer_mean")).tolist() == ["SF", "MF", "dead", "MF", "SF", "MF"]


def test_all_layers_table():
    rng = np.random.default_rng(4)
    names = [f"c{i}" for i in range(12)]
    tables = []
    for layer in ("conv1_1", "conv1_2"):
        rows = rng.integers(0, 4, size=(15, 12))
        rows[0] = 0
        tables.append(layer_metrics_table(layer, rows, names))
    table = all_layers_table(tables, "global_mean")
    assert len(table) == 30
    mf = table["mf"]
    live = mf.notna()
    assert table.loc[~live, "facet"].eq("dead").all()
    threshold = mf[live].mean()
    assert (table.loc[live, "facet"] == np.where(mf[live] > threshold, "MF", "SF")).all()
    norm = table["mf_norm"][live]
    assert norm.min() == 0 and norm.max() == 1
    np.testing.assert_allclose(norm, (mf[live] - mf[live].min()) / (mf[live].max() - mf[live].min()))
    # per-layer p-values stay those of the layer alone
    np.testing.assert_array_equal(table["p_value"].to_numpy()[:15], tables[0]["p_value"].to_numpy())
    assert isinstance(table, pd.DataFrame)


def test_input_validation():
    with pytest.raises(ValueError, match="at least 2"):
        gini(np.ones((3, 1)))
    with pytest.raises(ValueError, match="non-negative"):
        flatness(np.array([[1, -1, 0]]))
    with pytest.raises(ValueError, match="names"):
        top_classes(np.ones((1, 3)), ["a", "b"])


def test_metrics_table_q_values_are_benjamini_hochberg_of_its_p_values():
    rows = np.array([[9, 1, 0, 0], [3, 3, 2, 2], [0, 0, 0, 0], [5, 5, 0, 0], [1, 2, 3, 4], [10, 0, 0, 0]])
    table = layer_metrics_table("l", rows, ["a", "b", "c", "d"])
    for p_column, q_column in (("p_value", "q_value"), ("p_empirical", "q_empirical")):
        p = table[p_column].to_numpy()
        finite = np.isfinite(p)
        m = finite.sum()
        # by hand: q_(i) = min over j >= i of p_(j) m / j, capped at 1
        order = np.argsort(p[finite])
        ranked = p[finite][order] * m / np.arange(1, m + 1)
        q = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
        want = np.full(len(p), np.nan)
        want[np.flatnonzero(finite)[order]] = q
        np.testing.assert_allclose(table[q_column], want, equal_nan=True)
