"""Neuron similarity (Pearson, Euclidean on CoF rows) against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.spatial.distance import cdist

from neurofacets.similarity import (
    euclidean_rows,
    mean_off_diagonal,
    neighbours,
    neuron_similarity,
    pearson_rows,
    similarity_dataset,
)
from neurofacets.store import write_xarray_store


def cof_rows(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 6, size=(25, 40))
    rows[3] = 0  # dead
    rows[11] = 2  # equal in every class
    return rows


def test_pearson_equals_scipy_pearsonr():
    rows = cof_rows()
    corr = pearson_rows(rows)
    constant = {3, 11}
    for i in range(len(rows)):
        for j in range(len(rows)):
            if i in constant or j in constant:
                assert np.isnan(corr[i, j])
            else:
                assert corr[i, j] == pytest.approx(stats.pearsonr(rows[i], rows[j]).statistic, abs=1e-12)


def test_pearson_equals_corrcoef_and_diagonal_is_one():
    rows = cof_rows(1)
    keep = np.setdiff1d(np.arange(len(rows)), [3, 11])
    np.testing.assert_allclose(pearson_rows(rows)[np.ix_(keep, keep)], np.corrcoef(rows[keep]), atol=1e-12)
    assert np.all(np.diag(pearson_rows(rows))[keep] == 1.0)


def test_euclidean_equals_scipy_cdist_exactly():
    rows = cof_rows(2)
    np.testing.assert_array_equal(euclidean_rows(rows), cdist(rows, rows, "euclidean"))
    big = np.random.default_rng(3).integers(0, 100, size=(30, 1000))
    np.testing.assert_allclose(euclidean_rows(big), cdist(big, big), rtol=1e-14, atol=0)


def test_neuron_similarity_excludes_zero_variance_rows():
    rows = cof_rows(4)
    sim = neuron_similarity(rows)
    assert sim.excluded.tolist() == [i in (3, 11) for i in range(25)]
    assert sim.n_excluded == 2
    for m in (sim.pearson, sim.euclidean):
        assert np.isnan(m[[3, 11], :]).all() and np.isnan(m[:, [3, 11]]).all()
    keep = ~sim.excluded
    assert np.isfinite(sim.pearson[np.ix_(keep, keep)]).all()
    ref = cdist(rows, rows)
    np.testing.assert_array_equal(sim.euclidean[np.ix_(keep, keep)], ref[np.ix_(keep, keep)])


def test_mean_off_diagonal():
    rows = cof_rows(5)
    sim = neuron_similarity(rows)
    keep = np.flatnonzero(~sim.excluded)
    corr = np.corrcoef(rows[keep])
    expected = (corr.sum() - len(keep)) / (len(keep) * (len(keep) - 1))
    assert mean_off_diagonal(sim.pearson, sim.excluded) == pytest.approx(expected, abs=1e-12)
    dist = cdist(rows[keep], rows[keep])
    assert mean_off_diagonal(sim.euclidean, sim.excluded) == pytest.approx(dist.sum() / (len(keep) * (len(keep) - 1)))
    assert np.isnan(mean_off_diagonal(np.zeros((3, 3)), np.array([True, True, False])))


def brute_force_neighbours(matrix: np.ndarray, i: int, count: int, largest: bool) -> list[tuple[int, float]]:
    """Row i's neighbours by sorting every other finite entry: (-value or value, neuron)."""
    candidates = [(j, float(matrix[i, j])) for j in range(len(matrix)) if j != i and np.isfinite(matrix[i, j])]
    return sorted(candidates, key=lambda jv: (-jv[1] if largest else jv[1], jv[0]))[:count]


@pytest.mark.parametrize("count", [0, 1, 3, 30])
def test_neighbours_match_brute_force_on_a_similarity(count):
    rows = cof_rows(7) // 2  # small counts: many equal correlations and distances (ties)
    rows[5] = 1  # constant: excluded, NaN row and column
    sim = neuron_similarity(rows)
    for matrix, largest in ((sim.pearson, True), (sim.euclidean, False)):
        got = neighbours(matrix, count, largest=largest)
        assert len(got) == len(rows)
        for i in range(len(rows)):
            assert got[i] == brute_force_neighbours(matrix, i, count, largest)
        assert got[5] == [] and all(j != 5 for row in got for j, _ in row)
    assert any(len({v for _, v in row}) < len(row) for row in neighbours(sim.euclidean, 30, largest=False))


def test_neighbours_ties_go_to_the_lower_neuron_and_skip_the_diagonal():
    matrix = np.array([[9.0, 0.5, 0.5, 0.7],
                       [0.5, 9.0, np.nan, 0.5],
                       [0.5, np.nan, 9.0, 0.1],
                       [0.7, 0.5, 0.1, 9.0]])
    assert neighbours(matrix, 2, largest=True) == [[(3, 0.7), (1, 0.5)], [(0, 0.5), (3, 0.5)],
                                                   [(0, 0.5), (3, 0.1)], [(0, 0.7), (1, 0.5)]]
    assert neighbours(matrix, 1, largest=False) == [[(1, 0.5)], [(0, 0.5)], [(3, 0.1)], [(2, 0.1)]]
    with pytest.raises(ValueError, match="square"):
        neighbours(np.ones((2, 3)), 1, largest=True)
    with pytest.raises(ValueError, match="count"):
        neighbours(np.ones((2, 2)), -1, largest=True)


def test_similarity_store(tmp_path):
    sim = neuron_similarity(cof_rows(6))
    write_xarray_store(tmp_path / "s.zarr", similarity_dataset("conv1_1", sim, "class", {"run": "x"}))
    with xr.open_zarr(tmp_path / "s.zarr", consolidated=False) as ds:
        np.testing.assert_array_equal(ds["pearson"].values, sim.pearson)
        np.testing.assert_array_equal(ds["euclidean"].values, sim.euclidean)
        np.testing.assert_array_equal(ds["excluded"].values, sim.excluded)
        assert ds.attrs["n_excluded"] == 2 and ds.attrs["layer"] == "conv1_1" and ds.attrs["run"] == "x"


def test_input_validation():
    with pytest.raises(ValueError, match="2-d"):
        pearson_rows(np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        euclidean_rows(np.array([[1.0, np.nan], [0.0, 1.0]]))
