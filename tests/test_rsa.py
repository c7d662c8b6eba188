"""Class RDMs and the layer x layer RSA against rsatoolbox (test-only dependency) and scipy.

rsatoolbox (pip install rsatoolbox; in pyproject's ``test`` extra) is the independent
reference. Its "correlation" RDM is ``1 - Pearson`` between the patterns (here: classes
described by the neurons' counts), like ours. Its "euclidean" RDM is NOT a distance: it is
the *squared* Euclidean distance divided by the number of channels, so ours is compared as
``sqrt(rsatoolbox * n_channels)``. Where rsatoolbox is not installed, those tests skip and
the scipy ones (hand-rolled Spearman on upper triangles) still run.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from neurofacets.rsa import class_rdm, rdm_dataset, read_rdm, rsa_matrix, upper_triangle
from neurofacets.similarity import euclidean_rows
from neurofacets.store import write_xarray_store

try:
    import rsatoolbox
    import rsatoolbox.data
    import rsatoolbox.rdm
except ImportError:  # pragma: no cover - exercised only where rsatoolbox is absent
    rsatoolbox = None

needs_rsatoolbox = pytest.mark.skipif(rsatoolbox is None, reason="rsatoolbox is not installed (pip install rsatoolbox)")


def layer_cofs(seed: int = 0, n_layers: int = 4, n_neurons: int = 30, n_classes: int = 12) -> dict[str, np.ndarray]:
    """CoF matrices whose class geometry drifts from layer to layer (so RSA is not trivial)."""
    rng = np.random.default_rng(seed)
    base = rng.poisson(3.0, size=(n_neurons, n_classes))
    out = {}
    for i in range(n_layers):
        out[f"conv{i + 1}_1"] = base + rng.poisson(1.0 + 2.0 * i, size=base.shape)
    return out


def test_class_rdm_is_one_minus_pearson_of_columns():
    cof = layer_cofs()["conv1_1"]
    rdm, excluded = class_rdm(cof)
    assert not excluded.any()
    for a in range(cof.shape[1]):
        for b in range(cof.shape[1]):
            expected = 0.0 if a == b else 1 - stats.pearsonr(cof[:, a], cof[:, b]).statistic
            assert rdm[a, b] == pytest.approx(expected, abs=1e-12)


def test_class_rdm_excludes_constant_columns():
    cof = layer_cofs()["conv1_1"].copy()
    cof[:, 4] = 0  # a class no neuron counts
    rdm, excluded = class_rdm(cof)
    assert excluded.tolist() == [c == 4 for c in range(cof.shape[1])]
    assert np.isnan(rdm[4]).all() and np.isnan(rdm[:, 4]).all()
    keep = ~excluded
    assert np.isfinite(rdm[np.ix_(keep, keep)]).all()


@needs_rsatoolbox
def test_class_rdm_equals_rsatoolbox_correlation():
    cof = layer_cofs(1)["conv2_1"]
    rdm, _ = class_rdm(cof)
    data = rsatoolbox.data.Dataset(cof.T.astype(float))  # one pattern per class
    reference = rsatoolbox.rdm.calc_rdm(data, method="correlation").get_matrices()[0]
    np.testing.assert_allclose(rdm, reference, atol=1e-12)


@needs_rsatoolbox
def test_euclidean_equals_rsatoolbox_after_undoing_its_square_and_scale():
    cof = layer_cofs(2)["conv1_1"]
    data = rsatoolbox.data.Dataset(cof.astype(float))  # one pattern per neuron
    squared_scaled = rsatoolbox.rdm.calc_rdm(data, method="euclidean").get_matrices()[0]
    np.testing.assert_allclose(euclidean_rows(cof), np.sqrt(squared_scaled * cof.shape[1]), atol=1e-9)


@needs_rsatoolbox
def test_rsa_equals_rsatoolbox_spearman():
    cofs = layer_cofs(3)
    rdms = {layer: class_rdm(cof)[0] for layer, cof in cofs.items()}
    table = rsa_matrix(rdms)
    layers = list(cofs)
    objects = {
        layer: rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(cof.T.astype(float)), method="correlation")
        for layer, cof in cofs.items()
    }
    for a in layers:
        for b in layers:
            reference = rsatoolbox.rdm.compare(objects[a], objects[b], method="spearman")[0, 0]
            assert table.loc[a, b] == pytest.approx(reference, abs=1e-10)
    assert np.allclose(np.diag(table.to_numpy()), 1.0)
    assert table.to_numpy()[0, -1] < 1.0  # the geometry does change over the layers


@needs_rsatoolbox
def test_rsa_with_excluded_classes_equals_rsatoolbox_on_shared_pairs():
    cofs = layer_cofs(4, n_layers=2)
    cofs["conv1_1"][:, 2] = 0  # class 2 undefined in the first layer only
    rdms = {layer: class_rdm(cof)[0] for layer, cof in cofs.items()}
    table = rsa_matrix(rdms)
    # rsatoolbox drops NaN positions but needs them in the same places in both RDMs:
    # give it the pairs defined in both, which is what rsa_matrix compares.
    a, b = (upper_triangle(r) for r in rdms.values())
    both = np.isfinite(a) & np.isfinite(b)
    masked = [np.where(both, v, np.nan)[None, :] for v in (a, b)]
    reference = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(masked[0]), rsatoolbox.rdm.RDMs(masked[1]), method="spearman")
    assert table.iloc[0, 1] == pytest.approx(reference[0, 0], abs=1e-10)


def test_rsa_equals_hand_rolled_spearman_on_upper_triangles():
    cofs = layer_cofs(5)
    cofs["conv3_1"][:, 7] = 5  # constant column: excluded in one layer
    rdms = {layer: class_rdm(cof)[0] for layer, cof in cofs.items()}
    table = rsa_matrix(rdms)
    n = 12
    for a, ra in rdms.items():
        for b, rb in rdms.items():
            va = [ra[i, j] for i in range(n) for j in range(i + 1, n)]
            vb = [rb[i, j] for i in range(n) for j in range(i + 1, n)]
            pairs = [(x, y) for x, y in zip(va, vb) if np.isfinite(x) and np.isfinite(y)]
            x, y = np.array(pairs).T
            # Spearman = Pearson of the (average-tie) ranks
            expected = np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1]
            assert table.loc[a, b] == pytest.approx(expected, abs=1e-12)


def test_rsa_undefined_pairs_are_nan():
    rdm = np.array([[0.0, 0.5, np.nan], [0.5, 0.0, np.nan], [np.nan, np.nan, 0.0]])
    table = rsa_matrix({"a": rdm, "b": rdm})
    assert table.isna().all().all()  # one defined pair < MIN_PAIRS
    with pytest.raises(ValueError, match="shape"):
        rsa_matrix({"a": np.zeros((3, 3)), "b": np.zeros((4, 4))})


def test_rdm_store_round_trip(tmp_path):
    cof = layer_cofs()["conv1_1"]
    rdm, excluded = class_rdm(cof)
    names = ["crane"] * 2 + [f"c{i}" for i in range(10)]  # duplicate names are allowed
    write_xarray_store(tmp_path / "r.zarr", rdm_dataset("conv1_1", rdm, excluded, names, "class", {"run": "x"}))
    np.testing.assert_array_equal(read_rdm(tmp_path / "r.zarr"), rdm)
    with xr.open_zarr(tmp_path / "r.zarr", consolidated=False) as ds:
        assert [str(s) for s in ds["name_i"].values] == names
        assert ds.attrs["n_excluded"] == 0 and ds.attrs["level"] == "class"
