"""ICA of receptive-field patches: solvers, recovery, order and sign rules, degenerate inputs,
convergence records, the derived store and its reader, the status summary."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from neurofacets.ica import (
    FITS,
    LUMA_WEIGHTS,
    SOLVERS,
    STATUS,
    STATUS_CODE,
    FitSettings,
    IcaReader,
    area_matrix,
    build_ica,
    components_from_unmixing,
    fit_signals,
    fit_sources,
    neuron_components,
    neuron_fits,
    read_neuron_ica,
    solvers,
    status_counts,
    to_uint8,
    write_ica_store,
)
from neurofacets.ica.fit import noise_variances
from neurofacets.ica.solvers import centre, fixed_point_residual, initial_rotation, solve, whiten
from neurofacets.ica.summary import main as summary_main

RF = 32


def settings(**kwargs) -> FitSettings:
    return FitSettings(**{"n_components": 4, "max_iter": 400, "tol": 1e-4, "seed": 0, **kwargs})


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


def components(fit, signals: np.ndarray) -> np.ndarray:
    """The fit's components (n_components, pixels), as the store's reader computes them."""
    return components_from_unmixing(fit.unmixing, centre(signals))


# ---------------------------------------------------------------------------- solvers


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_recovers_known_sources_in_order_and_with_positive_sign(solver):
    truth = source_images()
    signals = mixtures(truth, 60).astype(np.float32)
    fit = fit_sources(signals, settings(solver=solver))
    assert STATUS[fit.status] == "ok" and fit.converged and 0 < fit.n_iter < 400 and fit.attempts == 1
    corr, match = matched_correlation(components(fit, signals), truth)
    # recovered (> 0.95), with the sign of the truth (all mixing weights positive, so every
    # source correlates positively with the mean patch), in the order of their power
    assert np.all(corr > 0.95), corr
    assert match.tolist() == [0, 1, 2, 3]
    assert fit.residual < 1e-4  # a fixed point by FastICA's own criterion, whatever the solver


def test_picard_o_matches_python_picard_step_for_step():
    # the float32 port and the package reach the same answer from the same start, in about
    # as many iterations (float32 gradients are exact to ~1e-6: tolerances well above that)
    for seed in range(3):
        signals = mixtures(source_images(seed=seed), 40, seed=seed + 7).astype(np.float32)
        z = whiten(centre(signals), 4).z
        ours = solve("picard_o", z, max_iter=300, tol=1e-4, seed=seed)
        theirs = solve("python_picard", z, max_iter=300, tol=1e-4, seed=seed)
        assert ours.converged and theirs.converged
        assert abs(ours.n_iter - theirs.n_iter) <= 2, (ours.n_iter, theirs.n_iter)
        corr, match = matched_correlation(ours.rotation @ z, theirs.rotation @ z.astype(np.float64))
        assert np.all(np.abs(corr) > 0.9999) and match.tolist() == [0, 1, 2, 3]


def test_fixed_point_residual_is_scikit_learns_stopping_measure():
    # one scikit-learn FastICA iteration from the rotation stops exactly when tol > residual
    z = whiten(centre(mixtures(source_images(), 30).astype(np.float32)), 4).z.astype(np.float64)
    rotation = initial_rotation(4, seed=3)
    residual = fixed_point_residual(rotation, z)
    assert 1e-6 < residual < 1

    def warns(tol: float) -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            FastICA(whiten=False, w_init=rotation, max_iter=1, tol=tol).fit(z.T)
        return any(issubclass(w.category, ConvergenceWarning) for w in caught)

    assert warns(residual * 0.999) and not warns(residual * 1.001)
    # at a converged Picard-O answer the residual is ~0
    solution = solve("picard_o", z.astype(np.float32), max_iter=300, tol=1e-7, seed=0)
    assert fixed_point_residual(solution.rotation, z) < 1e-8


def test_whitening_gives_unit_variance_uncorrelated_rows():
    signals = mixtures(source_images(), 25).astype(np.float32)
    white = whiten(centre(signals), 4)
    np.testing.assert_allclose(white.z.astype(np.float64) @ white.z.T / white.z.shape[1], np.eye(4), atol=1e-4)
    eig = np.linalg.eigvalsh(np.cov(signals.astype(np.float64), bias=True) * signals.shape[1])[::-1]
    np.testing.assert_allclose(white.eigenvalues[:4], eig[:4], rtol=1e-4)


def test_unknown_solver_is_refused():
    with pytest.raises(ValueError, match="unknown ICA solver 'jade'"):
        solve("jade", np.zeros((2, 10), np.float32), max_iter=1, tol=1e-4, seed=0)


# ---------------------------------------------------------------------------- one fit


def test_order_is_by_explained_variance_computed_independently():
    truth = source_images(seed=3)
    signals = mixtures(truth, 50, seed=4, power=(1.0, 3.0, 2.0, 4.0)).astype(np.float32)
    fit = fit_sources(signals, settings())
    # least-squares regression of the centred patches on the returned components
    centred = (signals - signals.mean(axis=1, keepdims=True)).astype(np.float64).T  # (pixels, n)
    design = components(fit, signals).astype(np.float64).T
    coef = np.linalg.lstsq(design, centred, rcond=None)[0]  # (4, n)
    share = (coef**2).sum(axis=1) * design.var(axis=0) / centred.var(axis=0).sum()
    assert np.all(np.diff(share) < 0)
    np.testing.assert_allclose(fit.explained_variance, share, rtol=1e-3)
    # together they explain what the top-4 PCA subspace explains
    singular = np.linalg.svd(centred, compute_uv=False)
    np.testing.assert_allclose(fit.explained_variance.sum(), (singular[:4] ** 2).sum() / (singular**2).sum(), rtol=1e-3)
    _, match = matched_correlation(components(fit, signals), truth)
    assert match.tolist() == [3, 1, 2, 0]


def test_components_are_unit_variance_and_uncorrelated():
    signals = mixtures(source_images(), 40).astype(np.float32)
    comps = components(fit_sources(signals, settings()), signals).astype(np.float64)
    np.testing.assert_allclose(comps @ comps.T / comps.shape[1], np.eye(4), atol=1e-3)


def test_sign_correlates_positively_with_the_mean_patch():
    rng = np.random.default_rng(5)
    signals = mixtures(source_images(seed=5), 40, seed=6)
    signals *= rng.choice([-1.0, 1.0], size=(40, 1))  # mixed-sign weights: sign not given by the truth
    signals = signals.astype(np.float32)
    comps = components(fit_sources(signals, settings()), signals)
    mean_patch = signals.mean(axis=0)
    for component in comps:
        assert np.corrcoef(component, mean_patch)[0, 1] > 0
    # negating every patch flips the mean patch, hence every component
    flipped = components(fit_sources(-signals, settings()), -signals)
    corr, _ = matched_correlation(flipped, -comps)
    assert np.all(corr > 0.999)


def test_bit_identical_across_runs():
    signals = mixtures(source_images(), 30).astype(np.float32)
    a = fit_sources(signals, settings())
    b = fit_sources(signals.copy(), settings())
    assert a.unmixing.tobytes() == b.unmixing.tobytes()
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
    fits = neuron_fits(patches, settings())
    ics = neuron_components(patches, fits.unmixing, RF)
    assert ics["gray"].shape == (4, RF, RF) and ics["rgb"].shape == (4, RF, RF, 3)
    assert ics["rgb"].dtype == np.float32 and ics["uint8"].dtype == np.uint8
    for c in range(3):  # rgb channel c is exactly the ICA of channel c
        channel = patches[..., c].reshape(40, -1).astype(np.float32)
        expected = components(fit_sources(channel, settings()), channel).reshape(4, RF, RF)
        assert np.array_equal(ics["rgb"][..., c], expected)
    # gray is the ICA of BT.601 luminance (computed here in float64)
    luma = (patches.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)).reshape(40, -1).astype(np.float32)
    expected = components(fit_sources(luma, settings()), luma)
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(ics["gray"].reshape(4, -1), expected)]
    assert min(corr) > 0.999
    assert np.array_equal(ics["uint8"], to_uint8(ics["rgb"]))
    assert fits.status.tolist() == [0, 0, 0, 0] and fits.converged.all() and (fits.attempts == 1).all()
    # the sources are still recovered from uint8-rounded mixtures, per channel
    truth = source_images()
    for c in range(3):
        corr, _ = matched_correlation(ics["rgb"][..., c].reshape(4, -1), truth)
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
    fits = neuron_fits(patches, settings())
    assert [STATUS[s] for s in fits.status] == ["constant"] * 4
    ics = neuron_components(patches, fits.unmixing, 8)
    assert np.isnan(ics["gray"]).all() and np.isnan(ics["rgb"]).all() and not ics["uint8"].any()
    assert fits.n_iter.tolist() == [0] * 4 and not fits.converged.any()


@pytest.mark.parametrize("n", [0, 1, 3])
def test_fewer_patches_than_components(n):
    patches = uint8_patches(40)[:n]
    fits = neuron_fits(patches, settings())
    assert [STATUS[s] for s in fits.status] == ["too_few_patches"] * 4
    assert np.isnan(neuron_components(patches, fits.unmixing, RF)["gray"]).all()


def test_rank_deficient_patches_keep_the_directions_they_have():
    truth = source_images()[:2]  # only two sources in the patches
    signals = mixtures(truth, 30, power=(2.0, 1.0))
    signals = np.rint((signals - signals.min()) / (signals.max() - signals.min()) * 255).astype(np.float32)
    fit = fit_sources(signals, settings())
    assert STATUS[fit.status] == "rank_deficient"
    comps = components(fit, signals)
    assert np.isfinite(comps[:2]).all() and np.isnan(comps[2:]).all()
    corr, _ = matched_correlation(comps[:2], truth)
    assert np.all(corr > 0.95)


def test_uniform_patches_among_others_are_left_out():
    truth = source_images()
    signals = mixtures(truth, 30).astype(np.float32)
    with_uniform = np.vstack([np.full((2, signals.shape[1]), 90.0, np.float32), signals])
    fit = fit_sources(with_uniform, settings())
    assert STATUS[fit.status] == "ok"
    assert not fit.unmixing[:, :2].any()  # the uniform patches take no part
    comps = components(fit, with_uniform)
    corr, _ = matched_correlation(comps, truth)
    assert np.all(corr > 0.95)
    alone = fit_sources(signals, settings())  # same data without them
    np.testing.assert_array_equal(fit.unmixing[:, 2:], alone.unmixing)


def test_a_breaking_solver_gives_status_failed(monkeypatch):
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("expm did not converge")

    monkeypatch.setattr("neurofacets.ica.fit.solve", broken)
    fit = fit_sources(mixtures(source_images(), 30).astype(np.float32), settings())
    assert STATUS[fit.status] == "failed" and np.isnan(fit.unmixing).all()


def test_forced_non_converging_fit_is_redone_then_recorded_and_kept():
    signals = mixtures(source_images(), 30).astype(np.float32)
    fit = fit_sources(signals, settings(max_iter=1, tol=1e-12, restarts=2))
    assert STATUS[fit.status] == "not_converged" and not fit.converged and fit.n_iter <= 1
    assert fit.attempts == 3  # the first try and two restarts from other starts
    assert np.isfinite(fit.unmixing).all() and fit.residual > 1e-6
    # the kept attempt is the one of smallest residual among the three starts
    residuals = []
    for attempt in range(3):
        z = whiten(centre(signals), 4).z
        s = solve("picard_o", z, max_iter=1, tol=1e-12, seed=attempt)
        residuals.append(fixed_point_residual(s.rotation, z))
    assert fit.residual == pytest.approx(min(residuals), rel=1e-6)


def test_a_restart_from_another_start_can_converge(monkeypatch):
    # attempt 0 "fails", attempt 1 converges: the fit is ok after 2 attempts
    real = solvers.solve

    def flaky(solver, z, *, max_iter, tol, seed):
        result = real(solver, z, max_iter=max_iter, tol=tol, seed=seed)
        return result if seed > 0 else solvers.Solution(result.rotation, max_iter, False)

    monkeypatch.setattr("neurofacets.ica.fit.solve", flaky)
    fit = fit_sources(mixtures(source_images(), 30).astype(np.float32), settings())
    assert STATUS[fit.status] == "ok" and fit.converged and fit.attempts == 2


def test_argument_checks():
    with pytest.raises(ValueError, match="n, rf, rf, 3"):
        neuron_fits(np.zeros((4, 5, 6, 3), np.uint8), settings())
    with pytest.raises(ValueError, match="n_components"):
        FitSettings(n_components=0)
    with pytest.raises(ValueError, match="max_side"):
        FitSettings(max_side=1)
    with pytest.raises(ValueError, match="restarts"):
        FitSettings(restarts=-1)


# ---------------------------------------------------------------------------- max_side


def test_area_matrix_averages_boxes():
    np.testing.assert_allclose(area_matrix(6, 3), np.kron(np.eye(3), [[0.5, 0.5]]))
    reduce = area_matrix(5, 2)  # boxes of 2.5 samples
    np.testing.assert_allclose(reduce, [[0.4, 0.4, 0.2, 0, 0], [0, 0, 0.2, 0.4, 0.4]])
    assert np.allclose(area_matrix(196, 64).sum(axis=1), 1)
    np.testing.assert_allclose(area_matrix(7, 7), np.eye(7))


def test_max_side_fits_downsampled_patches():
    patches = uint8_patches(40, rf=32)
    signals = fit_signals(patches, 16)
    # channel planes are the 2 x 2 block means (the luminance of them for gray)
    blocks = patches.astype(np.float64).reshape(40, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(signals[1:], blocks.transpose(3, 0, 1, 2).reshape(3, 40, -1), atol=1e-4)
    np.testing.assert_allclose(signals[0], (blocks @ np.asarray(LUMA_WEIGHTS)).reshape(40, -1), atol=1e-3)
    fits = neuron_fits(patches, settings(max_side=16))
    ics = neuron_components(patches, fits.unmixing, 16)
    assert ics["gray"].shape == (4, 16, 16) and (fits.status == 0).all()
    # the sources survive the averaging
    truth = source_images(32).reshape(4, 16, 2, 16, 2).mean(axis=(2, 4)).reshape(4, -1)
    corr, _ = matched_correlation(ics["rgb"][..., 0].reshape(4, -1), truth)
    assert np.all(np.abs(corr) > 0.9)
    assert noise_variances(32, 16)[1] == pytest.approx(1 / 12 / 4)  # 2 x 2 pixels averaged: variance / 4


def former_fit_signals(patches: np.ndarray, side: int) -> np.ndarray:
    """fit_signals as it was (one plane at a time, fresh arrays): the bits the stores hold."""
    n, rf = patches.shape[0], patches.shape[1]
    planes = np.empty((3, n, rf, rf), dtype=np.float32)
    for c in range(3):
        planes[c] = patches[..., c]
    if side < rf:
        reduce = area_matrix(rf, side).astype(np.float32)
        planes = np.ascontiguousarray(reduce @ planes @ reduce.T)
    planes = planes.reshape(3, n, side * side)
    out = np.empty((4, n, side * side), dtype=np.float32)
    out[1:] = planes
    out[0] = (np.asarray(LUMA_WEIGHTS, dtype=np.float32) @ planes.reshape(3, -1)).reshape(n, side * side)
    return out


@pytest.mark.parametrize(("rf", "side"), [(23, 23), (32, 16), (30, 7)])
def test_fit_signals_into_a_reused_buffer_are_the_former_bits(rf, side):
    patches = np.random.default_rng(rf).integers(0, 256, size=(37, rf, rf, 3), dtype=np.uint8)
    expected = former_fit_signals(patches, side)
    # a stale, larger buffer (as the previous neuron leaves it) changes nothing
    buffer = np.full(4 * 50 * rf * rf, np.nan, dtype=np.float32)
    for out in (None, buffer, buffer):
        signals = fit_signals(patches, side, out=out)
        assert signals.shape == (4, 37, side * side) and signals.dtype == np.float32
        assert signals.tobytes() == expected.tobytes()
    # independently: the channels exactly, luminance as the float64 weighted sum
    if side == rf:
        planes = patches.transpose(3, 0, 1, 2).reshape(3, 37, -1)
        assert np.array_equal(signals[1:], planes)
        np.testing.assert_allclose(signals[0], (patches.astype(np.float64) @ LUMA_WEIGHTS).reshape(37, -1), rtol=1e-6)
    with pytest.raises(ValueError, match="out must be"):
        fit_signals(patches, side, out=np.empty(10, dtype=np.float32))
    with pytest.raises(ValueError, match="out must be"):
        fit_signals(patches, side, out=np.empty(4 * 37 * side * side, dtype=np.float64))


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
    root.attrs.update({"layer": "convX", "dataset_digest": "abc", "layout": "patches", "created": "t0"})
    return patches


STORE_SETTINGS = FitSettings(n_components=3, max_iter=200, tol=1e-4, seed=0)


def test_store_is_bit_identical_with_one_or_two_workers(tmp_path):
    write_patch_store(tmp_path / "patches.zarr")
    write_ica_store(tmp_path / "a.zarr", tmp_path / "patches.zarr", STORE_SETTINGS, workers=1)
    write_ica_store(tmp_path / "b.zarr", tmp_path / "patches.zarr", STORE_SETTINGS, workers=2)
    a, b = zarr.open_group(str(tmp_path / "a.zarr"), mode="r"), zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    for name in ("unmixing", "explained_variance", "n_iter", "converged", "status", "residual", "attempts", "n_counted"):
        assert a[name][:].tobytes() == b[name][:].tobytes(), name
    assert a["unmixing"].shape == (7, 4, 3, 10)
    status = a["status"][:]
    assert (status[2] == STATUS_CODE["too_few_patches"]).all() and (status[4] == STATUS_CODE["too_few_patches"]).all()
    assert (status[3] == STATUS_CODE["constant"]).all()
    assert (status[[0, 1, 5, 6]] == STATUS_CODE["ok"]).all()
    attrs = dict(a.attrs)
    assert attrs["n_components"] == 3 and attrs["layer"] == "convX" and attrs["rf"] == 12 and attrs["side"] == 12
    assert attrs["solver"] == "picard_o" and attrs["patches_store"] == "patches.zarr"
    assert attrs["status_codes"] == {str(c): s for c, s in STATUS.items()} and attrs["fits"] == list(FITS)


def test_reading_the_derived_store_returns_the_fitted_pictures(tmp_path):
    patches = write_patch_store(tmp_path / "patches.zarr")
    write_ica_store(tmp_path / "ica.zarr", tmp_path / "patches.zarr", STORE_SETTINGS)
    reader = IcaReader(tmp_path / "ica.zarr")
    assert reader.n_neurons == 7 and reader.n_components == 3 and reader.side == 12
    # each stored neuron equals the ICA of its counted patches computed alone, picture for picture
    fits = neuron_fits(patches[5, :10], STORE_SETTINGS)
    expected = neuron_components(patches[5, :10], fits.unmixing, 12)
    record = read_neuron_ica(tmp_path / "ica.zarr", 5)
    for mode in ("gray", "rgb", "uint8"):
        assert record[mode].dtype == expected[mode].dtype and np.array_equal(record[mode], expected[mode]), mode
        assert np.array_equal(reader.components(mode, [5])[0], expected[mode])
    # and they are what the definition says: unmixing @ centred channel patches, by float64 hand
    red = patches[5, :10, ..., 0].reshape(10, -1).astype(np.float64)
    by_hand = fits.unmixing[1].astype(np.float64) @ (red - red.mean(axis=1, keepdims=True))
    np.testing.assert_allclose(record["rgb"][..., 0].reshape(3, -1), by_hand, atol=1e-3)
    np.testing.assert_allclose(by_hand @ by_hand.T / by_hand.shape[1], np.eye(3), atol=1e-3)  # unit-variance ICs
    assert record["fits"]["gray"]["status"] == "ok" and record["fits"]["gray"]["converged"]
    assert record["fits"]["gray"]["residual"] < 1e-4 and record["fits"]["gray"]["attempts"] == 1
    assert read_neuron_ica(tmp_path / "ica.zarr", 3)["fits"]["red"]["status"] == "constant"
    blank = read_neuron_ica(tmp_path / "ica.zarr", 2)  # too few patches: NaN pictures, black uint8
    assert np.isnan(blank["gray"]).all() and np.isnan(blank["rgb"]).all() and not blank["uint8"].any()
    assert list(reader.status) == ["ok", "ok", "too_few_patches", "constant", "too_few_patches", "ok", "ok"]



def test_a_reader_reusing_its_signal_buffer_reads_each_neuron_as_a_fresh_reader_does(tmp_path):
    # one reader keeps one signal buffer for every neuron it reads: neurons of other sizes read
    # before (stale, larger buffer content) must not change a neuron's pictures by one bit
    write_patch_store(tmp_path / "patches.zarr")
    write_ica_store(tmp_path / "ica.zarr", tmp_path / "patches.zarr", STORE_SETTINGS)
    shared = IcaReader(tmp_path / "ica.zarr")
    for neuron in (0, 5, 1, 6, 5, 0):
        fresh = IcaReader(tmp_path / "ica.zarr").neuron(neuron)
        again = shared.neuron(neuron)
        for mode in ("gray", "rgb", "uint8"):
            assert again[mode].tobytes() == fresh[mode].tobytes(), (neuron, mode)


def test_centring_in_place_gives_the_copy_s_bits():
    signals = np.random.default_rng(0).normal(3.0, 2.0, size=(5, 301)).astype(np.float32)
    copy = centre(signals)
    inplace = signals.copy()
    assert centre(inplace, in_place=True) is inplace and inplace.tobytes() == copy.tobytes()


def test_reader_refuses_a_patch_store_the_fits_did_not_use(tmp_path):
    write_patch_store(tmp_path / "patches.zarr")
    write_ica_store(tmp_path / "ica.zarr", tmp_path / "patches.zarr", STORE_SETTINGS)
    other = tmp_path / "other.zarr"
    write_patch_store(other)
    zarr.open_group(str(other), mode="r+").attrs["created"] = "t1"  # rebuilt since
    with pytest.raises(ValueError, match="not the one these fits were computed from"):
        IcaReader(tmp_path / "ica.zarr", other).neuron(0)
    with pytest.raises(FileNotFoundError, match="ICA store"):
        IcaReader(tmp_path / "missing.zarr")


def test_max_side_store_has_smaller_pictures(tmp_path):
    write_patch_store(tmp_path / "patches.zarr", rf=12)
    write_ica_store(tmp_path / "ica.zarr", tmp_path / "patches.zarr", FitSettings(n_components=3, max_side=6))
    record = read_neuron_ica(tmp_path / "ica.zarr", 0)
    assert record["gray"].shape == (3, 6, 6) and record["uint8"].shape == (3, 6, 6, 3)
    assert zarr.open_group(str(tmp_path / "ica.zarr"), mode="r").attrs["max_side"] == 6


def test_forced_non_converging_fits_are_recorded_counted_and_summarised(tmp_path, capsys):
    write_patch_store(tmp_path / "patches.zarr")
    out = tmp_path / "run" / "ica" / "convX.zarr"
    build_ica(tmp_path / "patches.zarr", out, FitSettings(n_components=3, max_iter=1, tol=1e-12, restarts=1),
              config={"model": {}})
    reader = IcaReader(out)
    codes = reader.status_codes
    fitted = [0, 1, 5, 6]
    assert (codes[fitted] == STATUS_CODE["not_converged"]).all()
    assert reader.not_converged().tolist() == [True, True, False, False, False, True, True]
    assert reader.status[0] == "not_converged"
    record = reader.neuron(0)
    assert all(not f["converged"] and f["attempts"] == 2 for f in record["fits"].values())
    assert np.isfinite(record["gray"]).all()  # components kept
    table = status_counts(out.parent)
    row = table.set_index("layer").loc["convX"]
    assert row["fits"] == 28 and row["not_converged"] == 16 and row["too_few_patches"] == 8 and row["constant"] == 4
    assert row["not_converged_pct"] == pytest.approx(100 * 16 / 28)
    assert summary_main(["summary", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "not_converged" in printed and "convX" in printed and "57.14" in printed


def test_build_ica_carries_provenance_and_writes_atomically(tmp_path):
    write_patch_store(tmp_path / "patches.zarr", rf=8, k=4)
    out = tmp_path / "ica" / "convX.zarr"
    build_ica(tmp_path / "patches.zarr", out, FitSettings(n_components=2, max_iter=50, tol=1e-3, seed=1),
              config={"model": {}})
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    assert attrs["dataset_digest"] == "abc" and "config_digest" in attrs and attrs["seed"] == 1
    assert attrs["patches_store"] == "../patches.zarr"
    assert [p.name for p in out.parent.iterdir()] == ["convX.zarr"]  # no temporary left behind


def test_ica_of_an_images_layout_store_equals_that_of_a_patches_layout_store(tmp_path):
    # the lean patch store (images, patches cut when read) gives the very same fits and pictures
    from neurofacets.models import LayerGeometry
    from neurofacets.patches import write_patch_store as write_patches
    from neurofacets.topk import TopK

    rng = np.random.default_rng(4)
    size, rf, neurons, k = 48, 20, 5, 12
    images = [np.rint(np.clip(uint8_patches(1, size, seed=i)[0] * 0.8 + rng.normal(0, 8, (size, size, 3)), 0, 255))
              .astype(np.uint8) for i in range(15)]
    image_id = np.stack([rng.choice(15, size=k, replace=False) for _ in range(neurons)]).astype(np.int64)
    argmax = rng.integers(0, 12 * 12, size=(neurons, k)).astype(np.int32)
    counts = np.array([12, 12, 9, 1, 12], dtype=np.int32)
    topk = TopK("convX", image_id, np.ones((neurons, k), np.float32), argmax, counts, 12, 12, 15)
    geometry = LayerGeometry("convX", "features.0", neurons, 12, 12, rf, 4, 1.5)
    readers = {}
    for layout in ("patches", "images"):
        write_patches(tmp_path / layout / "convX.zarr", topk, geometry, lambda i: images[i], image_size=size,
                      layout=layout, attrs={"created": layout})
        write_ica_store(tmp_path / layout / "ica.zarr", tmp_path / layout / "convX.zarr", STORE_SETTINGS)
        readers[layout] = IcaReader(tmp_path / layout / "ica.zarr")
    a, b = readers["patches"], readers["images"]
    assert a.patches().layout == "patches" and b.patches().layout == "images"
    for name in ("unmixing", "status", "n_iter", "residual"):
        assert np.array_equal(a.group[name][:], b.group[name][:], equal_nan=True), name
    for mode in ("gray", "rgb", "uint8"):
        assert np.array_equal(a.components(mode, slice(0, neurons)), b.components(mode, slice(0, neurons)),
                              equal_nan=True), mode
    assert (a.status_codes[3] == STATUS_CODE["too_few_patches"]).all() and (a.status_codes[[0, 1, 2, 4]] == 0).all()
