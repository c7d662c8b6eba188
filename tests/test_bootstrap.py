"""The bootstrap intervals (neurofacets.bootstrap) against brute-force recomputation.

Each resample's top-k sets are recomputed by hand (the resampled images listed one copy at a
time, sorted by the tie rule, cut at k), their CoF rows and metrics by the independent
definitions of tests/fakerun.py, scipy and sklearn; the draws' layer numbers by plain numpy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakerun import flatness as flatness_by_hand
from fakerun import gini as gini_by_hand
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from neurofacets import bootstrap
from neurofacets.cof import count_cof
from neurofacets.evaluation import content_order, split_halves
from neurofacets.metrics import flatness, gini
from neurofacets.readers import SUMMARY_DRAWS_COLUMNS, read_summary_draws
from neurofacets.store import write_activation_shard
from neurofacets.topk import select_top_k


def _brute_cof(values, codes, n_columns, content_rank, counts, k):
    """(draws, neurons, columns): each resample as an explicit list of copies, sorted, cut at k."""
    out = np.zeros((len(counts), values.shape[1], n_columns), dtype=np.int64)
    for b, row in enumerate(counts):
        copies = np.repeat(np.arange(len(row)), row)
        for j in range(values.shape[1]):
            ranked = copies[np.lexsort((content_rank[copies], -values[copies, j]))][:k]
            ranked = ranked[values[ranked, j] > 0]
            out[b, j] = np.bincount(codes[ranked], minlength=n_columns)
    return out


def _tiny(seed=0, n=48, neurons=6, n_columns=4):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, neurons)).astype(np.float32)
    values[:, 0] = np.round(values[:, 0])  # many ties: the tie rule decides
    values[:, 1] = 0  # dead
    values[:, 2] = np.where(rng.random(n) < 0.2, values[:, 2], -1)  # few positive images: fewer than k count
    codes = rng.integers(0, n_columns, n)
    keys = rng.integers(0, 2**63, n).astype(np.uint64)
    order = content_order(keys, np.arange(n))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return values, codes, keys, order, rank


def test_resampled_cof_equals_the_resamples_listed_copy_by_copy():
    values, codes, _, order, rank = _tiny()
    counts = bootstrap.resample_counts(codes, order, seed=3, draws=25)
    for k in (1, 5, 48):
        got = bootstrap.resampled_cof(values, codes, 4, rank, counts, k)
        np.testing.assert_array_equal(got, _brute_cof(values, codes, 4, rank, counts, k))


def test_candidates_grow_when_the_best_images_were_not_drawn():
    """The first 3k + 32 images undrawn in one resample: the candidates must reach further."""
    rng = np.random.default_rng(1)
    n, k = 400, 5
    values = rng.random((n, 3)).astype(np.float32) + 0.1
    codes = rng.integers(0, 5, n)
    rank = np.arange(n)
    counts = np.ones((2, n), dtype=np.uint8)
    best = np.argsort(-values[:, 0])[:200]
    counts[1, best] = 0
    got = bootstrap.resampled_cof(values, codes, 5, rank, counts, k)
    np.testing.assert_array_equal(got, _brute_cof(values, codes, 5, rank, counts, k))
    assert got[1, 0].sum() == k


def test_one_copy_of_every_image_is_the_runs_own_top_k_and_cof():
    values, codes, keys, order, rank = _tiny(seed=2)
    ids = np.arange(len(codes))
    topk = select_top_k("l", ids, values, np.zeros(values.shape, dtype=np.int32), 7, 1, 1, keys)
    from neurofacets.cof import LabelLevel

    level = LabelLevel("class", ("a", "b", "c", "d"), codes)
    once = np.ones((1, len(codes)), dtype=np.uint8)
    np.testing.assert_array_equal(bootstrap.resampled_cof(values, codes, 4, rank, once, 7)[0], count_cof(topk, level))


def test_resamples_are_stratified_seeded_and_follow_the_pictures():
    _, codes, keys, order, _ = _tiny(seed=4, n=60)
    counts = bootstrap.resample_counts(codes, order, seed=5, draws=30)
    assert counts.dtype == np.uint8 and counts.shape == (30, 60)
    for c in np.unique(codes):  # every class keeps its size in every resample
        np.testing.assert_array_equal(counts[:, codes == c].sum(axis=1), (codes == c).sum())
    np.testing.assert_array_equal(counts, bootstrap.resample_counts(codes, order, seed=5, draws=30))
    assert not np.array_equal(counts, bootstrap.resample_counts(codes, order, seed=6, draws=30))
    # the same pictures under other ids and other class numbers: the same counts per picture
    shuffle = np.random.default_rng(0).permutation(60)
    renamed = (codes[shuffle] * 7 + 3) % 11  # a one-to-one renaming of the classes
    moved = bootstrap.resample_counts(renamed, content_order(keys[shuffle], np.arange(60)), seed=5, draws=30)
    np.testing.assert_array_equal(moved, counts[:, shuffle])
    with pytest.raises(ValueError, match=">= 0"):
        bootstrap.resample_counts(codes, order, seed=5, draws=-1)


def _shards(tmp_path, values, keys, split_at):
    """Two shards of a layer ``l`` holding the images' activations (ids in order)."""
    paths = []
    ids = np.arange(len(values))
    for part, rows in enumerate((slice(0, split_at), slice(split_at, None))):
        path = tmp_path / f"shard-{part}.zarr"
        argmax = np.zeros_like(values[rows], dtype=np.int32)
        write_activation_shard(path, ids[rows], {"l": (values[rows], argmax, (1, 1))}, content_keys=keys[rows])
        paths.append(path)
    return paths


def _labels(codes, n_columns):
    from neurofacets.cof import LabelLevel

    names = tuple(f"c{i}" for i in range(n_columns))
    return LabelLevel("class", names, np.asarray(codes))


def test_layer_draws_by_hand_and_block_by_block(tmp_path):
    values, codes, keys, order, rank = _tiny(seed=6, n=40, neurons=5)
    level = _labels(codes, 4)
    paths = _shards(tmp_path, values, keys, 17)
    k, draws, seed = 6, 12, 9
    ds = bootstrap.layer_draws(paths, "l", level, level, top_k=k, seed=seed, split_seed=2, resamples=draws)
    blocked = bootstrap.layer_draws(paths, "l", level, level, top_k=k, seed=seed, split_seed=2, resamples=draws,
                                    block_bytes=4 * 40 * 2)  # two neurons at a time
    for name in bootstrap.LAYER_VARIABLES:
        np.testing.assert_array_equal(ds[name].values, blocked[name].values)
    counts = bootstrap.resample_counts(codes, order, seed, draws, bootstrap.FULL)
    cof = _brute_cof(values, codes, 4, rank, counts, k)
    sparsity = np.array([[gini_by_hand(row) for row in draw] for draw in cof])
    flat = np.array([[flatness_by_hand(row) for row in draw] for draw in cof])
    np.testing.assert_allclose(ds["sparsity"].values, sparsity, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["flatness"].values, flat, rtol=0, atol=1e-12)
    # the evaluation's halves, each resampled within its classes
    half = split_halves(codes, order, 2)
    half_counts = bootstrap.resample_counts(codes * 2 + half, order, seed, draws, bootstrap.HALVES)
    halves = []
    for h in (0, 1):
        rows = np.flatnonzero(half == h)
        sub_rank = np.argsort(np.argsort(rank[rows]))
        halves.append(_brute_cof(values[rows], codes[rows], 4, sub_rank, half_counts[:, rows], k))
        mf = np.array([[flatness_by_hand(r) / gini_by_hand(r) if r.sum() else np.nan for r in draw]
                       for draw in halves[-1]])
        np.testing.assert_allclose(ds[f"mf_{h}"].values, mf, rtol=1e-9, atol=1e-12)
    a, b = halves[0] > 0, halves[1] > 0
    with np.errstate(invalid="ignore"):
        jaccard = (a & b).sum(axis=2) / (a | b).sum(axis=2)
    np.testing.assert_allclose(ds["class_jaccard"].values, jaccard, rtol=1e-12)
    # the label test: each half's label (its listed top classes that recur; 4 classes: every
    # class met at least twice) scored on the other half's copies by scipy's Mann-Whitney
    rows = [np.flatnonzero(half == h) for h in (0, 1)]
    label_p = np.full((draws, 5), np.nan)
    for b in range(draws):
        for j in range(5):
            per_direction = []
            for h in (0, 1):
                held = rows[1 - h]
                copies = np.repeat(held, half_counts[b, held])
                hit = np.isin(codes[copies], np.flatnonzero(halves[h][b, j] >= 2))
                x, y = values[copies[hit], j].astype(float), values[copies[~hit], j].astype(float)
                if not len(x) or not len(y):
                    per_direction.append(np.nan)
                elif np.ptp(values[copies, j]) == 0:
                    per_direction.append(1.0)
                else:
                    per_direction.append(stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic",
                                                            use_continuity=True).pvalue)
            if not np.isnan(per_direction).all():
                label_p[b, j] = min(1.0, 2 * np.nanmin(per_direction))
    assert np.isfinite(label_p).sum() > draws  # labels were scored
    np.testing.assert_allclose(ds["label_p"].values, label_p, rtol=1e-9, atol=1e-12)
    # written and read back
    path = tmp_path / "bootstrap" / "l.zarr"
    from neurofacets.store import write_xarray_store

    write_xarray_store(path, ds)
    back = bootstrap.read_layer_draws(path)
    np.testing.assert_array_equal(back["sparsity"].values, ds["sparsity"].values)


def test_facet_kappa_is_sklearns():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.choice(["MF", "SF", "dead"], 50, p=[0.4, 0.5, 0.1]).astype(object)
        b = rng.choice(["MF", "SF", "dead"], 50, p=[0.3, 0.6, 0.1]).astype(object)
        alive = (a != "dead") & (b != "dead")
        assert bootstrap.facet_kappa(a, b) == cohen_kappa_score(a[alive].astype(str), b[alive].astype(str))
    assert np.isnan(bootstrap.facet_kappa(np.array(["MF"] * 5, dtype=object), np.array(["MF"] * 5, dtype=object)))


def _fake_stores(rng, layers=(("a", 30), ("b", 20)), draws=8):
    import xarray as xr

    stores = []
    for name, n in layers:
        data = {}
        sparsity = rng.uniform(0.1, 0.9, (draws, n))
        sparsity[:, 0] = np.nan  # a dead neuron
        flat = rng.uniform(0.1, 0.9, (draws, n))
        flat[:, 0] = -1.0
        data = {"sparsity": sparsity, "flatness": flat, "mf_0": rng.uniform(0.5, 3, (draws, n)),
                "mf_1": rng.uniform(0.5, 3, (draws, n)), "class_jaccard": rng.uniform(0, 1, (draws, n))}
        data["mf_0"][:, 1] = np.nan
        data["label_p"] = rng.uniform(0, 1, (draws, n)) ** 6
        data["label_p"][:, 2] = np.nan  # not scored
        stores.append(xr.Dataset({k: (("draw", "neuron"), v) for k, v in data.items()}, attrs={"layer": name}))
    return stores


def test_draws_table_by_hand():
    rng = np.random.default_rng(0)
    stores = _fake_stores(rng)
    layers = ["a", "b"]
    table = bootstrap.draws_table(stores, layers, "global_mean", "run")
    assert list(table.columns) == list(SUMMARY_DRAWS_COLUMNS) and len(table) == 16
    for b in (0, 5):
        mf_all = np.concatenate([ds["flatness"].values[b] / ds["sparsity"].values[b] for ds in stores])
        threshold = np.nanmean(mf_all)
        lo, hi = np.nanmin(mf_all), np.nanmax(mf_all)
        half_mf = [np.concatenate([ds[f"mf_{h}"].values[b] for ds in stores]) for h in (0, 1)]
        half_threshold = [np.nanmean(m) for m in half_mf]
        start = 0
        for ds, layer in zip(stores, layers):
            row = table[(table["layer"] == layer) & (table["draw"] == b)].iloc[0]
            s, f = ds["sparsity"].values[b], ds["flatness"].values[b]
            mf = f / s
            live = ~np.isnan(s)
            assert row["frac_mf"] == pytest.approx((mf[live] > threshold).sum() / len(s), abs=1e-15)
            assert row["frac_sf"] == pytest.approx((mf[live] <= threshold).sum() / len(s), abs=1e-15)
            assert row["frac_dead"] == pytest.approx((~live).sum() / len(s))
            assert row["mean_sparsity"] == pytest.approx(s[live].mean(), rel=1e-12)
            assert row["mean_flatness"] == pytest.approx(f[live].mean(), rel=1e-12)
            assert row["mean_mf"] == pytest.approx(mf[live].mean(), rel=1e-12)
            assert row["mean_mf_norm"] == pytest.approx(((mf[live] - lo) / (hi - lo)).mean(), rel=1e-12)
            m0, m1 = (half_mf[h][start:start + len(s)] for h in (0, 1))
            both = ~np.isnan(m0) & ~np.isnan(m1)
            assert row["mf_rho"] == pytest.approx(stats.spearmanr(m0[both], m1[both]).statistic, rel=1e-12)
            f0 = np.where(np.isnan(m0), "dead", np.where(m0 > half_threshold[0], "MF", "SF"))
            f1 = np.where(np.isnan(m1), "dead", np.where(m1 > half_threshold[1], "MF", "SF"))
            alive = (f0 != "dead") & (f1 != "dead")
            assert row["facet_kappa"] == pytest.approx(cohen_kappa_score(f0[alive], f1[alive]), rel=1e-12)
            assert row["mean_class_jaccard"] == pytest.approx(ds["class_jaccard"].values[b].mean(), rel=1e-12)
            p = ds["label_p"].values[b]
            scored = p[~np.isnan(p)]
            holds = stats.false_discovery_control(scored, method="bh") < 0.05
            assert row["frac_label_holds"] == holds.mean() and 0 < holds.mean() < 1
            start += len(s)
    with pytest.raises(ValueError, match="layer 'b' given for layer 'a'"):
        bootstrap.draws_table(stores[::-1], layers, "global_mean", "run")


def test_intervals_are_the_points_plus_the_draws_spread(tmp_path):
    rng = np.random.default_rng(1)
    draws = pd.DataFrame({"run": "r", "layer": np.repeat(["a", "b"], 50), "draw": np.tile(np.arange(50), 2),
                          **{c: rng.uniform(0.2, 0.4, 100) for c in SUMMARY_DRAWS_COLUMNS[3:]}})
    draws.loc[3, "mf_rho"] = np.nan
    path = tmp_path / "draws.csv"
    draws.to_csv(path, index=False)
    read = read_summary_draws(path)
    summary = pd.DataFrame({"layer": ["a", "b", "c"], "frac_mf": [0.5, 0.01, 0.3], "mf_rho": [0.1, 0.2, 0.3]})
    out = bootstrap.with_intervals(summary, read, ["frac_mf", "mf_rho"])
    a = draws.loc[draws["layer"] == "a", "frac_mf"].to_numpy()
    low, high = 0.5 + np.percentile(a - np.median(a), [2.5, 97.5])
    assert out.loc[0, "frac_mf_ci_low"] == pytest.approx(low) and out.loc[0, "frac_mf_ci_high"] == pytest.approx(high)
    assert out.loc[0, "frac_mf_ci_low"] <= 0.5 <= out.loc[0, "frac_mf_ci_high"]
    assert out.loc[1, "frac_mf_ci_low"] == 0.0  # clipped to the share's range
    rho = draws.loc[(draws["layer"] == "a"), "mf_rho"].dropna().to_numpy()
    assert out.loc[0, "mf_rho_ci_high"] == pytest.approx(0.1 + np.percentile(rho - np.median(rho), 97.5))
    assert out.loc[2, ["frac_mf_ci_low", "mf_rho_ci_high"]].isna().all()  # a layer without draws
    empty = bootstrap.with_intervals(summary, read.iloc[:0], ["frac_mf"])
    assert empty["frac_mf_ci_low"].isna().all() and pd.api.types.is_float_dtype(empty["frac_mf_ci_low"])
    with pytest.raises(ValueError, match="lack columns"):
        bootstrap.with_intervals(summary, read.drop(columns="mf_rho"), ["mf_rho"])


def test_intervals_cover_the_truth_of_a_synthetic_layer():
    """A population of 40 neurons over 8 classes; the truth is each headline mean's expectation
    over 300 fresh samples of 240 images (k = 20). Over 40 samples the 95 % interval (200
    resamples each) must cover it in at least 85 % of them (binomial: 95 % coverage falls
    below 34/40 with probability < 2 %)."""
    n_classes, per_class, k, neurons = 8, 30, 20, 40
    n = n_classes * per_class
    mu = np.random.default_rng(0).normal(0, 0.7, size=(n_classes, neurons))
    codes = np.repeat(np.arange(n_classes), per_class)
    rank = order = np.arange(n)

    def sample(seed):
        rng = np.random.default_rng(seed)
        return np.maximum(mu[codes] + rng.normal(size=(n, neurons)), 0).astype(np.float32)

    def means(cof):
        draws = cof.shape[0]
        rows = cof.reshape(-1, n_classes)
        s, f = gini(rows).reshape(draws, -1), flatness(rows).reshape(draws, -1)
        return np.stack([np.nanmean(s, axis=1), np.nanmean(f, axis=1)], axis=1)

    once = np.ones((1, n), dtype=np.uint8)
    truth = np.mean([means(bootstrap.resampled_cof(sample(1000 + i), codes, n_classes, rank, once, k))[0]
                     for i in range(300)], axis=0)
    covered = np.zeros(2)
    for seed in range(40):
        x = sample(seed)
        point = means(bootstrap.resampled_cof(x, codes, n_classes, rank, once, k))[0]
        counts = bootstrap.resample_counts(codes, order, seed, 200)
        draws = means(bootstrap.resampled_cof(x, codes, n_classes, rank, counts, k))
        for j in range(2):
            low, high = bootstrap.interval(point[j], draws[:, j])
            covered[j] += low <= truth[j] <= high
    assert (covered >= 34).all(), covered


def test_no_resamples_no_intervals(tmp_path):
    """``analysis.bootstrap: 0``: empty stores, a header-only draws table, empty interval columns."""
    values, codes, keys, _, _ = _tiny(seed=7, n=20, neurons=3)
    level = _labels(codes, 4)
    ds = bootstrap.layer_draws(_shards(tmp_path, values, keys, 9), "l", level, level, top_k=5, seed=0, split_seed=0,
                               resamples=0)
    assert ds.sizes == {"draw": 0, "neuron": 3}
    table = bootstrap.draws_table([ds], ["l"], "global_mean", "run")
    assert table.empty and list(table.columns) == list(SUMMARY_DRAWS_COLUMNS)
    out = bootstrap.with_intervals(pd.DataFrame({"layer": ["l"], "frac_mf": [0.5]}), table, ["frac_mf"])
    assert out[["frac_mf_ci_low", "frac_mf_ci_high"]].isna().all().all()


def test_weighted_label_test_is_sklearns_auroc_and_scipys_mann_whitney():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(11)
    n, neurons, n_columns, draws = 30, 7, 3, 9
    values = np.round(rng.normal(size=(n, neurons)), 1)  # ties between images
    values[:, 3] = np.maximum(values[:, 3], 0)  # many tied zeros
    values[:, 5] = 2.0  # every copy tied: p = 1
    codes = rng.integers(0, n_columns, n)
    counts = rng.integers(0, 4, (draws, n)).astype(np.uint8)  # copies: ties among themselves
    members = rng.random((draws, neurons, n_columns)) < 0.4
    members[0, 0] = False  # no positive: NaN
    members[1, 1] = True  # every copy positive: NaN
    auroc, p = bootstrap.weighted_label_test(values, codes, counts, members, block_entries=2 * draws * n)
    checked = 0
    for b in range(draws):
        for j in range(neurons):
            hit = members[b, j, codes]
            w = counts[b].astype(float)
            if w[hit].sum() == 0 or w[~hit].sum() == 0:
                assert np.isnan(auroc[b, j]) and np.isnan(p[b, j])
                continue
            if j == 5:
                assert p[b, j] == 1.0
            else:
                x, y = np.repeat(values[hit, j], counts[b, hit]), np.repeat(values[~hit, j], counts[b, ~hit])
                expected = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic", use_continuity=True)
                assert p[b, j] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)
            keep = w > 0
            assert auroc[b, j] == pytest.approx(roc_auc_score(hit[keep], values[keep, j], sample_weight=w[keep]),
                                                rel=1e-12)
            checked += 1
    assert checked > 40 and np.isnan(auroc[0, 0]) and np.isnan(auroc[1, 1])
    np.testing.assert_array_equal(bootstrap.combined_label_p(np.array([0.01, np.nan, np.nan, 0.7]),
                                                             np.array([0.3, 0.02, np.nan, 0.9])),
                                  [0.02, 0.04, np.nan, 1.0])
