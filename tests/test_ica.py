"""ICA of receptive-field patches: recovery, order and sign rules, degenerate inputs, the store."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from scipy.optimize import linear_sum_assignment

from neurofacets.ica import (
    FITS,
    LUMA_WEIGHTS,
    STATUS,
    STATUS_CODE,
    fit_sources,
    neuron_ica,
    build_ica,
    read_neuron_ica,
    to_uint8,
    write_ica_store,
)

SETTINGS = dict(max_iter=400, tol=1e-4, seed=0)
RF = 32


def source_images(rf: int = RF, seed: int = 0) -> np.ndarray:
    """Four independent, non-Gaussian source images (4, rf*rf), unit variance."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rf, 0:rf] / rf
    sources = np.stack(
        [
            np.sign(np.sin(2 * np.pi * 3 * x)),  # vertical bars (binary)
            np.sin(2 * np.pi * 5 * y + 0.3),  # horizontal waves
            rng.laplace(size=(rf, rf)),  # sparse noise
            (rng.uniform(size=(rf, rf)) < 0.1).astype(float),  # sparse dots
        ]
    ).reshape(4, -1)
    sources -= sources.mean(axis=1, keepdims=True)
    return sources / sources.std(axis=1, keepdims=True)


def mixtures(sources: np.ndarray, n: int, seed: int = 1, power=(4.0, 3.0, 2.0, 1.0)) -> np.ndarray:
    """n mixed signals (n, pixels): source j enters with weights of mean and spread power[j]."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.2, 1.8, size=(n, len(sources))) * np.asarray(power)[: len(sources)]
    offsets = rng.uniform(-5, 5, size=(n, 1))
    return weights @ sources + offsets


def matched_correlation(estimated: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed correlations of the best one-to-one matching (by |corr|) and the matching."""
    corr = np.corrcoef(np.vstack([estimated, truth]))[: len(estimated), len(estimated) :]
    rows, cols = linear_sum_assignment(-np.abs(corr))
    return corr[rows, cols], cols


def test_recovers_known_sources_in_order_and_with_positive_sign():
    truth = source_images()
    fit = fit_sources(mixtures(truth, 60).astype(np.float32), n_components=4, **SETTINGS)
    assert STATUS[fit.status] == "ok" and fit.converged and 0 < fit.n_iter < 400
    corr, match = matched_correlation(fit.sources, truth)
    # recovered (> 0.95), with the sign of the truth (all mixing weights positive, so every
    # source correlates positively with the mean patch), in the order of their power
    assert np.all(corr > 0.95), corr
    assert match.tolist() == [0, 1, 2, 3]


def test_order_is_by_explained_variance_computed_independently():
    truth = source_images(seed=3)
    signals = mixtures(truth, 50, seed=4, power=(1.0, 3.0, 2.0, 4.0)).astype(np.float32)
    fit = fit_sources(signals, n_components=4, **SETTINGS)
    # least-squares regression of the centred patches on the returned components
    centred = (signals - signals.mean(axis=1, keepdims=True)).astype(np.float64).T  # (pixels, n)
    design = fit.sources.astype(np.float64).T
    coef = np.linalg.lstsq(design, centred, rcond=None)[0]  # (4, n)
    share = (coef**2).sum(axis=1) * design.var(axis=0) / centred.var(axis=0).sum()
    assert np.all(np.diff(share) < 0)
    np.testing.assert_allclose(fit.explained_variance, share, rtol=1e-3)
    # together they explain what the top-4 PCA subspace explains
    singular = np.linalg.svd(centred, compute_uv=False)
    np.testing.assert_allclose(fit.explained_variance.sum(), (singular[:4] ** 2).sum() / (singular**2).sum(), rtol=1e-3)
    _, match = matched_correlation(fit.sources, truth)
    assert match.tolist() == [3, 1, 2, 0]


def test_sign_correlates_positively_with_the_mean_patch():
    rng = np.random.default_rng(5)
    signals = mixtures(source_images(seed=5), 40, seed=6)
    signals *= rng.choice([-1.0, 1.0], size=(40, 1))  # mixed-sign weights: sign not given by the truth
    signals = signals.astype(np.float32)
    fit = fit_sources(signals, n_components=4, **SETTINGS)
    mean_patch = signals.mean(axis=0)
    for component in fit.sources:
        assert np.corrcoef(component, mean_patch)[0, 1] > 0
    # negating every patch flips the mean patch, hence every component
    flipped = fit_sources(-signals, n_components=4, **SETTINGS)
    corr, _ = matched_correlation(flipped.sources, -fit.sources)
    assert np.all(corr > 0.999)


def test_bit_identical_across_runs():
    signals = mixtures(source_images(), 30).astype(np.float32)
    a = fit_sources(signals, n_components=4, **SETTINGS)
    b = fit_sources(signals.copy(), n_components=4, **SETTINGS)
    assert a.sources.tobytes() == b.sources.tobytes()
    assert a.explained_variance.tobytes() == b.explained_variance.tobytes() and a.n_iter == b.n_iter


def uint8_patches(n: int, rf: int = RF, seed: int = 0) -> np.ndarray:
    """n RGB patches (n, rf, rf, 3) mixing the four sources differently per channel."""
    truth = source_images(rf, seed)
    channels = [mixtures(truth, n, seed=seed + 10 + c) for c in range(3)]
    stacked = np.stack(channels, axis=-1).reshape(n, rf, rf, 3)
    scaled = (stacked - stacked.min()) / (stacked.max() - stacked.min()) * 255
    return np.rint(scaled).astype(np.uint8)


def test_neuron_modes_are_the_per_channel_and_luminance_fits():
    patches = uint8_patches(40)
    result = neuron_ica(patches, n_components=4, **SETTINGS)
    assert result.gray.shape == (4, RF, RF) and result.rgb.shape == (4, RF, RF, 3)
    assert result.rgb.dtype == np.float32 and result.uint8.dtype == np.uint8
    for c in range(3):  # rgb channel c is exactly the ICA of channel c
        channel = patches[..., c].reshape(40, -1).astype(np.float32)
        expected = fit_sources(channel, n_components=4, **SETTINGS).sources.reshape(4, RF, RF)
        assert np.array_equal(result.rgb[..., c], expected)
    # gray is the ICA of BT.601 luminance (computed here in float64)
    luma = (patches.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)).reshape(40, -1).astype(np.float32)
    expected = fit_sources(luma, n_components=4, **SETTINGS).sources
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(result.gray.reshape(4, -1), expected)]
    assert min(corr) > 0.999
    assert np.array_equal(result.uint8, to_uint8(result.rgb))
    assert result.status.tolist() == [0, 0, 0, 0] and result.converged.all()
    # the sources are still recovered from uint8-rounded mixtures, per channel
    truth = source_images()
    for c in range(3):
        corr, _ = matched_correlation(result.rgb[..., c].reshape(4, -1), truth)
        assert np.all(np.abs(corr) > 0.95)


def test_to_uint8_scales_each_component_over_its_three_channels():
    rgb = np.zeros((2, 1, 2, 3), dtype=np.float32)
    rgb[0, 0, 0] = [-1.0, 0.0, 1.0]
    rgb[0, 0, 1] = [0.5, -0.5, 3.0]
    rgb[1] = np.nan
    out = to_uint8(rgb)
    # min -1, max 3: (x + 1) * 255 / 4, rounded
    assert out[0, 0, 0].tolist() == [0, 64, 128] and out[0, 0, 1].tolist() == [96, 32, 255]
    assert not out[1].any()


def test_constant_patches_are_marked_not_crashed_on():
    patches = np.zeros((20, 8, 8, 3), dtype=np.uint8)
    patches[:] = np.arange(20, dtype=np.uint8)[:, None, None, None] * 10  # each patch uniform
    result = neuron_ica(patches, n_components=4, **SETTINGS)
    assert [STATUS[s] for s in result.status] == ["constant"] * 4
    assert np.isnan(result.gray).all() and np.isnan(result.rgb).all() and not result.uint8.any()
    assert result.n_iter.tolist() == [0] * 4 and not result.converged.any()


@pytest.mark.parametrize("n", [0, 1, 3])
def test_fewer_patches_than_components(n):
    result = neuron_ica(uint8_patches(40)[:n], n_components=4, **SETTINGS)
    assert [STATUS[s] for s in result.status] == ["too_few_patches"] * 4
    assert np.isnan(result.gray).all()


def test_rank_deficient_patches_keep_the_directions_they_have():
    truth = source_images()[:2]  # only two sources in the patches
    signals = mixtures(truth, 30, power=(2.0, 1.0))
    signals = np.rint((signals - signals.min()) / (signals.max() - signals.min()) * 255).astype(np.float32)
    fit = fit_sources(signals, n_components=4, **SETTINGS)
    assert STATUS[fit.status] == "rank_deficient"
    assert np.isfinite(fit.sources[:2]).all() and np.isnan(fit.sources[2:]).all()
    corr, _ = matched_correlation(fit.sources[:2], truth)
    assert np.all(corr > 0.95)


def test_uniform_patches_among_others_are_left_out():
    # a uniform first patch used to zero scikit-learn's whitening (np.sign(0) == 0)
    truth = source_images()
    signals = mixtures(truth, 30).astype(np.float32)
    with_uniform = np.vstack([np.full((2, signals.shape[1]), 90.0, np.float32), signals])
    fit = fit_sources(with_uniform, n_components=4, **SETTINGS)
    assert STATUS[fit.status] == "ok"
    corr, _ = matched_correlation(fit.sources, truth)
    assert np.all(corr > 0.95)
    alone = fit_sources(signals, n_components=4, **SETTINGS)  # same data without them
    assert np.array_equal(fit.sources, alone.sources)


def test_a_breaking_fastica_gives_status_failed(monkeypatch):
    class Broken:
        def __init__(self, **kwargs):
            pass

        def fit_transform(self, x):
            raise ValueError("A has a NaN entry")

    monkeypatch.setattr("neurofacets.ica.FastICA", Broken)
    fit = fit_sources(mixtures(source_images(), 30).astype(np.float32), n_components=4, **SETTINGS)
    assert STATUS[fit.status] == "failed" and np.isnan(fit.sources).all()


def test_not_converged_is_recorded_and_components_kept():
    fit = fit_sources(mixtures(source_images(), 30).astype(np.float32), n_components=4, max_iter=1, tol=1e-12, seed=0)
    assert STATUS[fit.status] == "not_converged" and not fit.converged and fit.n_iter == 1
    assert np.isfinite(fit.sources).all()


def test_argument_checks():
    with pytest.raises(ValueError, match="n, rf, rf, 3"):
        neuron_ica(np.zeros((4, 5, 6, 3), np.uint8), n_components=2, **SETTINGS)
    with pytest.raises(ValueError, match="n_components"):
        fit_sources(np.zeros((4, 9), np.float32), n_components=0, **SETTINGS)


# ---------------------------------------------------------------------------- the store


def write_patch_store(path, rf: int = 12, k: int = 10) -> np.ndarray:
    """A patch store of 7 neurons: ordinary ones, a constant one, one with too few patches."""
    counts = np.array([10, 10, 0, 10, 2, 10, 10])
    patches = np.zeros((7, k, rf, rf, 3), dtype=np.uint8)
    for n in range(7):
        patches[n] = uint8_patches(k, rf, seed=n)
    patches[3] = 77  # constant
    for n, c in enumerate(counts):
        patches[n, c:] = 0
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.create_array("patches", shape=patches.shape, chunks=(1, k, rf, rf, 3), dtype="uint8")[:] = patches
    root.create_array("n_counted", shape=(7,), dtype="int32")[:] = counts
    root.attrs.update({"layer": "convX", "dataset_digest": "abc"})
    return patches


def test_store_is_bit_identical_with_one_or_two_workers(tmp_path):
    patches = write_patch_store(tmp_path / "patches.zarr")
    settings = dict(n_components=3, max_iter=200, tol=1e-4, seed=0)
    write_ica_store(tmp_path / "a.zarr", tmp_path / "patches.zarr", workers=1, **settings)
    write_ica_store(tmp_path / "b.zarr", tmp_path / "patches.zarr", workers=2, **settings)
    a, b = zarr.open_group(str(tmp_path / "a.zarr"), mode="r"), zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    for name in ("gray", "rgb", "uint8", "explained_variance", "n_iter", "converged", "status", "n_counted"):
        assert a[name][:].tobytes() == b[name][:].tobytes(), name
    assert a["gray"].shape == (7, 3, 12, 12) and a["rgb"].shape == (7, 3, 12, 12, 3)
    status = a["status"][:]
    assert (status[2] == STATUS_CODE["too_few_patches"]).all() and (status[4] == STATUS_CODE["too_few_patches"]).all()
    assert (status[3] == STATUS_CODE["constant"]).all()
    assert np.isin(status[[0, 1, 5, 6]], [STATUS_CODE["ok"], STATUS_CODE["not_converged"]]).all()
    # each stored neuron equals the ICA of its counted patches computed alone
    alone = neuron_ica(patches[5, :10], **settings)
    assert np.array_equal(a["rgb"][5], alone.rgb) and np.array_equal(a["gray"][5], alone.gray)
    record = read_neuron_ica(tmp_path / "a.zarr", 3)
    assert list(record["fits"]) == list(FITS) and record["fits"]["gray"]["status"] == "constant"
    attrs = dict(a.attrs)
    assert attrs["n_components"] == 3 and attrs["layer"] == "convX" and attrs["rf"] == 12
    assert attrs["status_codes"] == {str(c): s for c, s in STATUS.items()} and attrs["fits"] == list(FITS)


def test_build_ica_carries_provenance_and_writes_atomically(tmp_path):
    write_patch_store(tmp_path / "patches.zarr", rf=8, k=4)
    out = tmp_path / "ica" / "convX.zarr"
    build_ica(tmp_path / "patches.zarr", out, n_components=2, max_iter=50, tol=1e-3, seed=1, config={"model": {}})
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    assert attrs["dataset_digest"] == "abc" and "config_digest" in attrs and attrs["seed"] == 1
    assert [p.name for p in out.parent.iterdir()] == ["convX.zarr"]  # no temporary left behind
