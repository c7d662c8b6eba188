"""Batched Picard-O (many fits per solver call) against the one-fit-at-a-time reference.

The batched path must give each fit the record the reference gives it alone, bit for bit:
the same unmixing matrices, explained variance, iterations, convergence, status, residual
and attempts, on patches cut from real photos (../shared/data/imagenet-sample) and on fits
that hit the iteration cap and restart.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from threadpoolctl import threadpool_limits

from neurofacets.ica import FitSettings, fit_signals, neuron_fits
from neurofacets.ica import fit as ica_fit
from neurofacets.ica.fit import block_fits, fit_sources, fit_sources_batch
from neurofacets.ica.solvers import centre, initial_rotation, picard_o, picard_o_batch, whiten
from neurofacets.ica.store import useful_workers

RECORD_FIELDS = ("unmixing", "explained_variance", "n_iter", "converged", "status", "residual", "attempts")


def photo_neurons(rf: int, neurons: int, patches: int, seed: int = 0) -> list[np.ndarray]:
    """``neurons`` sets of ``patches`` real-photo patches (rf x rf RGB uint8), each patch a box
    of a different ImageNet photo at a random place (as a neuron's top-k patches are)."""
    from conftest import shared_data

    photos = sorted((shared_data("imagenet-sample") / "images").glob("*.JPEG"))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(neurons):
        chosen = rng.choice(len(photos), size=patches, replace=False)
        cut = []
        for i in chosen:
            image = np.asarray(Image.open(photos[i]).convert("RGB"))
            top = rng.integers(0, image.shape[0] - rf)
            left = rng.integers(0, image.shape[1] - rf)
            cut.append(image[top:top + rf, left:left + rf])
        out.append(np.stack(cut))
    return out


def degenerate_neurons(rf: int) -> list[np.ndarray]:
    """A neuron of too few patches, one of uniform patches, one of 3 distinct patches repeated
    (rank deficient) and one with uniform patches among real ones."""
    rng = np.random.default_rng(1)
    few = rng.integers(0, 256, size=(3, rf, rf, 3), dtype=np.uint8)
    constant = np.full((12, rf, rf, 3), 7, dtype=np.uint8)
    distinct = rng.integers(0, 256, size=(3, rf, rf, 3), dtype=np.uint8)
    repeated = np.concatenate([distinct] * 5)
    mixed = np.concatenate([rng.integers(0, 256, size=(20, rf, rf, 3), dtype=np.uint8), constant[:4]])
    return [few, constant, repeated, mixed]


def assert_same_records(reference, batched) -> None:
    assert len(reference) == len(batched)
    for neuron, (a, b) in enumerate(zip(reference, batched)):
        for name in RECORD_FIELDS:
            left, right = getattr(a, name), getattr(b, name)
            assert left.dtype == right.dtype and left.shape == right.shape, (neuron, name)
            assert left.tobytes() == right.tobytes(), f"neuron {neuron}: {name} differs"


@pytest.mark.parametrize(("batch_bytes", "held_bytes"), [
    (1, 1 << 30),  # every fit alone
    (40_000, 1 << 30),  # a few per solver call
    (1 << 30, 1 << 30),  # every fit of a shape in one call
    (1 << 30, 200_000),  # stacks cut short by the memory held
])
def test_batched_fits_are_the_reference_fits_bit_for_bit_on_real_photo_patches(batch_bytes, held_bytes, monkeypatch):
    settings = FitSettings()  # the stage's defaults: 8 components, Picard-O, 200 iterations, 2 restarts
    neurons = photo_neurons(rf=14, neurons=8, patches=40) + degenerate_neurons(14)
    monkeypatch.setattr(ica_fit, "BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(ica_fit, "HELD_BYTES", held_bytes)
    with threadpool_limits(limits=1):
        reference = [neuron_fits(p, settings) for p in neurons]
        batched = block_fits(neurons, settings)
    assert_same_records(reference, batched)
    statuses = np.concatenate([r.status for r in reference])
    assert {0, 2, 3, 4} <= set(statuses.tolist())  # ok, rank_deficient, constant, too_few_patches all met
    assert len({int(n) for r in reference for n in r.n_iter}) > 5  # fits leave the stack at different iterations


def test_batched_fits_that_hit_the_cap_restart_as_the_reference_does():
    # 6 iterations: most fits stop unconverged, are redone from seeds 1 and 2, the best kept
    settings = FitSettings(n_components=6, max_iter=6, restarts=2)
    neurons = photo_neurons(rf=10, neurons=6, patches=30, seed=3)
    with threadpool_limits(limits=1):
        reference = [neuron_fits(p, settings) for p in neurons]
        batched = block_fits(neurons, settings)
    assert_same_records(reference, batched)
    attempts = np.concatenate([r.attempts for r in reference])
    assert (attempts == 3).any() and not np.concatenate([r.converged for r in reference]).all()


def test_picard_o_batch_is_picard_o_on_each_slice():
    neurons = photo_neurons(rf=12, neurons=4, patches=30, seed=5)
    zs = [whiten(centre(signal), 8).z for p in neurons for signal in fit_signals(p, 12)]
    starts = np.stack([initial_rotation(8, seed) for seed in range(len(zs))])  # a different start per fit
    with threadpool_limits(limits=1):
        batched = picard_o_batch(np.stack(zs), starts, max_iter=200, tol=1e-4)
        alone = [picard_o(z, start, max_iter=200, tol=1e-4) for z, start in zip(zs, starts)]
    for a, b in zip(alone, batched):
        assert a.rotation.tobytes() == b.rotation.tobytes() and (a.n_iter, a.converged) == (b.n_iter, b.converged)
    assert picard_o_batch(np.zeros((0, 8, 10), np.float32), np.zeros((0, 8, 8)), max_iter=5, tol=1e-4) == []
    with pytest.raises(ValueError, match="fits, r, T"):
        picard_o_batch(np.stack(zs), starts[:1], max_iter=5, tol=1e-4)


def test_a_stack_that_raises_is_solved_fit_by_fit(monkeypatch):
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("expm did not converge")

    neurons = photo_neurons(rf=8, neurons=3, patches=20, seed=7)
    settings = FitSettings(n_components=4)
    with threadpool_limits(limits=1):
        reference = [neuron_fits(p, settings) for p in neurons]
        monkeypatch.setattr(ica_fit, "picard_o_batch", broken)
        assert_same_records(reference, block_fits(neurons, settings))


@pytest.mark.parametrize("solver", ["python_picard", "fastica"])
def test_other_solvers_fit_one_by_one_with_the_same_records(solver):
    settings = FitSettings(n_components=4, solver=solver, max_iter=50)
    neurons = photo_neurons(rf=8, neurons=2, patches=16, seed=9)
    with threadpool_limits(limits=1):
        assert_same_records([neuron_fits(p, settings) for p in neurons], block_fits(neurons, settings))


def test_fit_sources_batch_takes_a_generator_and_keeps_the_order():
    rng = np.random.default_rng(0)
    signals = [rng.integers(0, 255, size=(10, side * side)).astype(np.float32) for side in (6, 5, 6, 4)]
    settings = FitSettings(n_components=3)
    results = fit_sources_batch(((s, 1 / 12) for s in signals), settings, held_bytes=1)  # a stack per fit
    for signal, result in zip(signals, results):
        reference = fit_sources(signal, settings, noise_variance=1 / 12)
        assert result.unmixing.tobytes() == reference.unmixing.tobytes() and result.n_iter == reference.n_iter
    assert fit_sources_batch(iter(()), settings) == []


def test_useful_workers_start_only_what_the_fits_repay():
    assert useful_workers(2, neurons=64, side=3, k=100) == 1  # conv1_1 of the default run: < 1 s of fits
    assert useful_workers(2, neurons=512, side=196, k=100) == 2  # conv5_3: minutes
    assert useful_workers(8, neurons=512, side=196, k=100) == 8
    assert useful_workers(1, neurons=512, side=196, k=100) == 1
    assert useful_workers(4, neurons=0, side=196, k=100) == 1
