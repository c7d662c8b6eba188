"""One neuron's ICA: the fits, their order and sign, and the components they define.

Each of a neuron's ``n`` counted top-k patches is one mixed signal; its pixels are the
samples. Four fits per neuron (`FITS`):

- ``gray``: the luminance patches, ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601);
- ``red``, ``green``, ``blue``: one ICA per channel. Mode ``rgb`` stacks channel i's
  component j into colour image j; mode ``uint8`` is that colour image min-max scaled
  to 0..255 (`to_uint8`).

A fit (`fit_sources`) centres each patch (removes its own mean), whitens once
(`whiten`: ``n_components`` leading PCA directions, unit
variance) and runs the configured solver (`neurofacets.ica.solvers`, Picard-O by
default) on the whitened float32 matrix. Its result is the **unmixing matrix** ``M``
(n_components x n): the components are ``S = M @ Xc`` (``Xc``: the centred patches,
n x pixels), each row a unit-variance source image. ``M`` is what the ICA store keeps;
`components_from_unmixing` turns it back into pictures (the same function at fit
time and when reading, so what is read is exactly what was fitted).

Rules that make the same input always give the same picture (each fit on its own):

- **Order**: by decreasing variance the component explains in the patches. The model is
  ``Xc = A S`` (``A`` = mixing, n x n_components, unit-variance uncorrelated sources),
  so component j contributes ``||A[:, j]||^2`` to the total variance
  ``sum_i var(Xc[i])``; ``explained_variance`` is that share of the total (the shares
  add up to the part of the variance the fit's PCA subspace keeps). Ties keep the
  solver's order.
- **Sign**: each component is multiplied by -1 or 1 so that it correlates positively
  with the mean patch of its fit: ``sum_p S_j[p] * (m[p] - mean(m)) > 0``. Where that
  sum is exactly 0, the pixel of largest ``|S_j|`` (first in row-major order) is made
  positive instead.

Each fit records ``n_iter`` (iterations of the kept attempt), ``converged`` (the solver's
own criterion met within ``max_iter``), ``residual`` (FastICA's fixed-point criterion at
the answer, `fixed_point_residual`, the same yardstick for
every solver), ``attempts`` (a fit that does not converge is redone from another random
start, up to ``restarts`` times; the first converged attempt is kept, else the one of
smallest residual) and a status (`STATUS`), checked in this order:

- ``too_few_patches``: fewer counted patches than ``max(2, n_components)``: no fit, NaN.
- ``constant``: every patch is uniform: no fit, NaN. Uniform patches among others are
  left out of the fit (centred, they are zero and change nothing).
- ``rank_deficient``: fewer than ``n_components`` PCA directions carry variance, i.e.
  eigenvalue ``lambda_j`` of ``Xc Xc^T`` below ``RANK_RTOL**2 * lambda_1`` (the float32
  precision of the Gram matrix) or a per-pixel variance ``lambda_j / pixels`` below that
  of uint8 rounding (1/12 for one channel, ``sum(w**2)/12`` for luminance, less after
  downsampling). The fit is done with that many components ``r``; components
  ``r..n_components-1`` are NaN.
- ``failed``: the solver raised or returned non-finite values (a safety net so a layer
  job never crashes): NaN.
- ``not_converged``: no attempt converged; the components of the kept attempt are kept.
- ``ok``.

With ``max_side`` (config ``visualize.ica_max_side``), patches larger than ``max_side``
pixels are first reduced to ``max_side x max_side`` by area averaging
(`area_matrix`), a linear map, before the fits; the components then have that size.

Arithmetic is float32 (float64 for the small k x k and r x r matrices) with BLAS pinned
to one thread by the callers, which makes every result bit-identical from run to run.
A fit is solved alone (`fit_sources`) or with others of its size in one batched
Picard-O call (`fit_sources_batch`, `block_fits`, the stage's path): the same
bits either way (the batch does each fit's operations on its own slice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .solvers import (
    DEFAULT_SOLVER, Whitened, centre, fixed_point_residual, gram_eigen, initial_rotation, picard_o_batch, solve,
    whiten,
)

#: Fit names, the order of the second axis of the per-fit arrays.
FITS: tuple[str, ...] = ("gray", "red", "green", "blue")
#: ITU-R BT.601 luma weights for R, G, B.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
#: Status codes stored in the ``status`` array.
STATUS: dict[int, str] = {
    0: "ok",
    1: "not_converged",
    2: "rank_deficient",
    3: "constant",
    4: "too_few_patches",
    5: "failed",
}
STATUS_CODE: dict[str, int] = {name: code for code, name in STATUS.items()}
#: Smallest kept PCA singular value relative to the largest. The float32 Gram matrix of
#: an exactly low-rank patch set leaves spurious singular values near 1e-3 of the
#: largest; 1e-2 stays clear of them.
RANK_RTOL = 1e-2
#: Variance of uint8 rounding of one channel (uniform error on [-0.5, 0.5]).
QUANTISATION_VARIANCE = 1.0 / 12.0
#: Default re-fits from other random starts of a fit that did not converge.
DEFAULT_RESTARTS = 2
#: Whitened data (bytes) of the fits one batched Picard-O call iterates on together: small
#: enough for the stack to stay in a core's cache; a fit larger than half of it is solved
#: alone (measured in docs/benchmarks/visualisation.md).
BATCH_BYTES = 1024 * 1024
#: Most bytes of small fits (centred patches and whitened data) waiting to be stacked.
HELD_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class FitSettings:
    """How every fit of a run is done (config ``visualize.*``)."""

    n_components: int = 8
    solver: str = DEFAULT_SOLVER
    max_iter: int = 200
    tol: float = 1e-4
    seed: int = 0
    restarts: int = DEFAULT_RESTARTS
    max_side: int | None = None

    def __post_init__(self) -> None:
        if self.n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components}")
        if self.max_iter < 1 or not self.tol > 0:
            raise ValueError(f"max_iter must be >= 1 and tol > 0, got {self.max_iter}, {self.tol}")
        if self.restarts < 0:
            raise ValueError(f"restarts must be >= 0, got {self.restarts}")
        if self.max_side is not None and self.max_side < 2:
            raise ValueError(f"max_side must be >= 2 or None, got {self.max_side}")

    def side(self, rf: int) -> int:
        """Side of the components of patches of ``rf`` pixels."""
        return rf if self.max_side is None else min(rf, self.max_side)


@dataclass(frozen=True)
class FitResult:
    """One fit, ordered and signed: the components are ``unmixing @ centred signals``."""

    unmixing: np.ndarray  # float32 (n_components, n); NaN rows where no component
    explained_variance: np.ndarray  # float32 (n_components,), fraction of the patch variance
    n_iter: int
    converged: bool
    status: int
    residual: float  # FastICA fixed-point criterion at the answer (NaN without a fit)
    attempts: int


@dataclass(frozen=True)
class NeuronFits:
    """The record of one neuron's four fits (`FITS` order on the first axis)."""

    unmixing: np.ndarray  # float32 (4, n_components, n)
    explained_variance: np.ndarray  # float32 (4, n_components)
    n_iter: np.ndarray  # int32 (4,)
    converged: np.ndarray  # bool (4,)
    status: np.ndarray  # int8 (4,)
    residual: np.ndarray  # float32 (4,)
    attempts: np.ndarray  # int8 (4,)


def _no_fit(n_components: int, n: int, status: str) -> FitResult:
    return FitResult(
        unmixing=np.full((n_components, n), np.nan, dtype=np.float32),
        explained_variance=np.full(n_components, np.nan, dtype=np.float32),
        n_iter=0, converged=False, status=STATUS_CODE[status], residual=float("nan"), attempts=0,
    )


def leading_rank(eigenvalues: np.ndarray, pixels: int, noise_variance: float) -> int:
    """How many leading PCA directions carry variance (see ``rank_deficient``)."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    if eigenvalues.size == 0 or not np.isfinite(eigenvalues[0]) or eigenvalues[0] <= 0:
        return 0
    strong = np.isfinite(eigenvalues) & (eigenvalues >= RANK_RTOL**2 * eigenvalues[0])
    strong &= eigenvalues / pixels >= noise_variance
    return int(np.argmin(strong)) if not strong.all() else len(strong)


def _best_attempt(whitened: Whitened, settings: FitSettings):
    """Solve, redoing a non-converged fit from other starts; (solution, residual, attempts)."""
    tracker = _Attempts(settings.restarts)
    for attempt in range(settings.restarts + 1):
        # attempt a starts from the rotation of seed + a (attempt 0: the configured seed)
        solution = solve(settings.solver, whitened.z, max_iter=settings.max_iter, tol=settings.tol,
                         seed=settings.seed + attempt)
        if tracker.add(solution, whitened.z, attempt):
            break
    return tracker.outcome()


class _Attempts:
    """One fit's attempts: the first converged one is kept, else the one of smallest residual."""

    def __init__(self, restarts: int) -> None:
        self.restarts = restarts
        self.best = None
        self.kept = None

    def add(self, solution, z: np.ndarray, attempt: int) -> bool:
        """Record attempt ``attempt``; True once the fit is decided (a converged attempt)."""
        if not np.all(np.isfinite(solution.rotation)):
            return False
        residual = fixed_point_residual(solution.rotation, z)
        if solution.converged:
            self.kept = (solution, residual, attempt + 1)
            return True
        if self.best is None or residual < self.best[1]:
            self.best = (solution, residual)
        return False

    def outcome(self):
        """(solution or None, residual, attempts)."""
        if self.kept is not None:
            return self.kept
        if self.best is None:
            return None, float("nan"), self.restarts + 1
        return self.best[0], self.best[1], self.restarts + 1


@dataclass(frozen=True)
class _Prepared:
    """A fit whitened and ready for its solver (`_prepare`)."""

    centred_all: np.ndarray  # float32 (n, pixels): every patch centred
    varying: np.ndarray  # bool (n,): patches that are not uniform
    mean_patch: np.ndarray  # float64 (pixels,): the mean patch (the sign rule)
    rank: int
    whitened: Whitened

    @property
    def nbytes(self) -> int:
        return self.centred_all.nbytes + self.whitened.z.nbytes + self.whitened.basis.nbytes


def _prepare(signals: np.ndarray, settings: FitSettings, noise_variance: float) -> _Prepared | FitResult:
    """Checks, centring and whitening of one fit: what its solver needs, or its final no-fit result."""
    if signals.ndim != 2:
        raise ValueError(f"signals must be (n, pixels), got shape {signals.shape}")
    n_components = settings.n_components
    signals = np.ascontiguousarray(signals, dtype=np.float32)
    n, pixels = signals.shape
    if n < max(2, n_components):
        return _no_fit(n_components, n, "too_few_patches")
    varying = np.any(signals != signals[:, :1], axis=1)
    if not varying.any():
        return _no_fit(n_components, n, "constant")
    centred_all = centre(signals)
    # uniform patches are zero once centred: they add nothing, so they are left out
    centred = centred_all if varying.all() else centred_all[varying]

    eigen = gram_eigen(centred)
    rank = min(leading_rank(eigen[0][:n_components], pixels, noise_variance), len(centred))
    if rank == 0:
        return _no_fit(n_components, n, "rank_deficient")
    try:
        whitened = whiten(centred, rank, eigen)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return _no_fit(n_components, n, "failed")
    # the sign rule's mean patch, from the signals (so they need not be kept)
    return _Prepared(centred_all, varying, signals.mean(axis=0, dtype=np.float64), rank, whitened)


def fit_sources(
    signals: np.ndarray, settings: FitSettings, *, noise_variance: float = QUANTISATION_VARIANCE
) -> FitResult:
    """ICA of mixed signals (one per row) with pixels as samples, ordered and signed.

    Parameters
    ----------
    signals
        float32 (n, pixels): each row one flattened patch (of one channel or luminance).
    settings
        Components, solver, iteration cap, tolerance, seed, restarts.
    noise_variance
        Per-pixel variance below which a PCA direction counts as rounding noise
        (``rank_deficient``).

    Returns
    -------
    FitResult
        The unmixing matrix (n_components, n): components ``unmixing @ centre(signals)``.
    """
    prepared = _prepare(signals, settings, noise_variance)
    if isinstance(prepared, FitResult):
        return prepared
    return _finish(prepared, settings, *_solve_alone(prepared.whitened, settings))


def fit_sources_batch(
    fits: Iterable[tuple[np.ndarray, float]], settings: FitSettings,
    *, batch_bytes: int = BATCH_BYTES, held_bytes: int = HELD_BYTES,
) -> list[FitResult]:
    """`fit_sources` of many fits, the Picard-O iterations of small fits stacked.

    Each result is the one `fit_sources` gives on that fit alone, bit for bit (the
    batched solver, `neurofacets.ica.solvers.picard_o_batch`, does each fit's
    arithmetic on its own slice; tests compare the two).

    Parameters
    ----------
    fits
        ``(signals, noise_variance)`` of each fit, as `fit_sources` takes them; may
        be a generator (fits are read one at a time).
    settings
        The fit settings.
    batch_bytes
        A fit whose whitened data (float32) is more than half of it is solved at once on
        its own; smaller ones are solved in stacks of the same rank and size,
        ``batch_bytes`` of whitened data per solver call at most (so that a stack stays in
        the processor's cache).
    held_bytes
        Most bytes of small fits (centred patches and whitened data) waiting for a stack.
    """
    queue = _FitQueue(settings, batch_bytes, held_bytes)
    for fit_signal, noise_variance in fits:
        queue.add(fit_signal, noise_variance)
    return queue.results()


class _FitQueue:
    """Fits added one at a time; small ones wait for a stack (`fit_sources_batch`)."""

    def __init__(self, settings: FitSettings, batch_bytes: int, held_bytes: int) -> None:
        self.settings, self.batch_bytes, self.held_bytes = settings, batch_bytes, held_bytes
        self._results: list[FitResult | None] = []
        self._held: list[tuple[int, _Prepared]] = []
        self._held_size = 0

    def add(self, signals: np.ndarray, noise_variance: float) -> None:
        i = len(self._results)
        self._results.append(None)
        prepared = _prepare(signals, self.settings, noise_variance)
        if isinstance(prepared, FitResult):
            self._results[i] = prepared
        elif self.settings.solver != "picard_o" or self.batch_bytes // prepared.whitened.z.nbytes <= 1:
            self._results[i] = _finish(prepared, self.settings, *_solve_alone(prepared.whitened, self.settings))
        else:
            self._held.append((i, prepared))
            self._held_size += prepared.nbytes
            if self._held_size >= self.held_bytes:
                self._solve_held()

    def results(self) -> list[FitResult]:
        self._solve_held()
        return self._results  # type: ignore[return-value]

    def _solve_held(self) -> None:
        _solve_held(self._held, self.settings, self.batch_bytes, self._results)
        self._held, self._held_size = [], 0


def _solve_held(held: list[tuple[int, _Prepared]], settings: FitSettings, batch_bytes: int,
                results: list[FitResult | None]) -> None:
    """Solve the waiting fits in stacks of one shape and finish them into ``results``."""
    groups: dict[tuple[int, ...], list[tuple[int, _Prepared]]] = {}
    for i, prepared in held:
        groups.setdefault(prepared.whitened.z.shape, []).append((i, prepared))
    for members in groups.values():
        per_call = max(1, batch_bytes // members[0][1].whitened.z.nbytes)
        for lo in range(0, len(members), per_call):
            chunk = members[lo:lo + per_call]
            outcomes = _solve_stack([prepared.whitened for _, prepared in chunk], settings)
            for (i, prepared), outcome in zip(chunk, outcomes):
                results[i] = _finish(prepared, settings, *outcome)


def _solve_alone(whitened: Whitened, settings: FitSettings) -> tuple:
    try:
        return _best_attempt(whitened, settings)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None, float("nan"), 0


def _solve_stack(whitened: Sequence[Whitened], settings: FitSettings) -> list[tuple]:
    """`_best_attempt` of fits of one shape, each attempt of the undecided ones in one call."""
    trackers = [_Attempts(settings.restarts) for _ in whitened]
    undecided = list(range(len(whitened)))
    r = whitened[0].z.shape[0]
    for attempt in range(settings.restarts + 1):
        start = initial_rotation(r, settings.seed + attempt)
        try:
            solutions = picard_o_batch(np.stack([whitened[i].z for i in undecided]),
                                       np.broadcast_to(start, (len(undecided), r, r)),
                                       max_iter=settings.max_iter, tol=settings.tol)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            # one fit broke the stack: each fit again on its own, where its failure is its own
            return [_solve_alone(w, settings) for w in whitened]
        undecided = [i for i, solution in zip(undecided, solutions)
                     if not trackers[i].add(solution, whitened[i].z, attempt)]
        if not undecided:
            break
    return [tracker.outcome() for tracker in trackers]


def _finish(prepared: _Prepared, settings: FitSettings, solution, residual: float, attempts: int) -> FitResult:
    """Order and sign one fit's components (or its ``failed`` result without a solution)."""
    n_components = settings.n_components
    varying, centred_all, rank, whitened = prepared.varying, prepared.centred_all, prepared.rank, prepared.whitened
    n, pixels = centred_all.shape
    if solution is None:
        return _no_fit(n_components, n, "failed")
    if rank < n_components:
        status = "rank_deficient"
    else:
        status = "ok" if solution.converged else "not_converged"

    # unmixing of the centred varying patches; mixing A = U sqrt(lambda) R^T / sqrt(pixels)
    rotation = solution.rotation
    unmixing = rotation @ whitened.basis  # (rank, n_varying), float64
    mixing = (whitened.vectors * np.sqrt(whitened.eigenvalues[:rank])) @ rotation.T / np.sqrt(pixels)
    total_variance = float(np.sum(whitened.eigenvalues)) / pixels
    share = np.sum(np.square(mixing), axis=0) / total_variance
    order = np.argsort(-share, kind="stable")
    unmixing, share = unmixing[order], share[order]

    full = np.zeros((rank, n), dtype=np.float64)
    full[:, varying] = unmixing
    # sign: positive correlation with the mean patch (components have zero mean)
    mean_patch = prepared.mean_patch
    projection = centred_all.astype(np.float64) @ (mean_patch - mean_patch.mean())  # (n,)
    alignment = full @ projection
    signs = np.sign(alignment)
    if np.any(signs == 0):
        sources = components_from_unmixing(full.astype(np.float32), centred_all)
        peak = sources[np.arange(rank), np.argmax(np.abs(sources), axis=1)]
        signs = np.where(signs == 0, np.sign(peak), signs)
    full *= signs[:, None]

    out = np.full((n_components, n), np.nan, dtype=np.float32)
    out[:rank] = full
    variance = np.full(n_components, np.nan, dtype=np.float32)
    variance[:rank] = share
    return FitResult(out, variance, solution.n_iter, solution.converged, STATUS_CODE[status], residual, attempts)


def components_from_unmixing(unmixing: np.ndarray, centred: np.ndarray) -> np.ndarray:
    """The components ``unmixing @ centred`` (float32 (c, pixels)); NaN rows stay NaN."""
    unmixing = np.asarray(unmixing, dtype=np.float32)
    out = np.full((len(unmixing), centred.shape[1]), np.nan, dtype=np.float32)
    present = np.all(np.isfinite(unmixing), axis=1)
    if present.any():
        out[present] = unmixing[present] @ centred
    return out


def area_matrix(size: int, side: int) -> np.ndarray:
    """Area-averaging map from ``size`` to ``side`` samples, float64 (side, size).

    Output sample i averages the input interval ``[i * size / side, (i + 1) * size / side)``,
    each input sample weighted by the length of its overlap; rows sum to 1. Applied to both
    image axes (``R @ patch @ R.T``) it is what a box filter of non-integer width does.
    """
    if not 1 <= side <= size:
        raise ValueError(f"side must be in 1..{size}, got {side}")
    edges = np.arange(side + 1) * (size / side)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def fit_signals(patches: np.ndarray, side: int, out: np.ndarray | None = None) -> np.ndarray:
    """The four signal matrices a neuron's fits use: float32 (4, n, side * side).

    Rows of ``[0]``: luminance patches; ``[1..3]``: R, G, B. Patches (n, rf, rf, 3) are
    reduced to ``side`` pixels by `area_matrix` first when ``side < rf``. ``out``, a
    float32 array of at least ``4 * n * side * side`` elements, is written into and
    returned (reshaped) instead of a new array: a layer's neurons reuse one buffer, as a
    fresh one of this size costs more in page faults than the conversion itself.
    """
    patches = np.asarray(patches)
    if patches.ndim != 4 or patches.shape[1] != patches.shape[2] or patches.shape[3] != 3:
        raise ValueError(f"patches must be (n, rf, rf, 3), got shape {patches.shape}")
    n, rf = patches.shape[0], patches.shape[1]
    size = 4 * n * side * side
    if out is None:
        out = np.empty(size, dtype=np.float32)
    elif out.dtype != np.float32 or out.size < size or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 of >= {size} elements, got {out.dtype} {out.shape}")
    out = out.reshape(-1)[:size].reshape(4, n, side * side)
    planes = out[1:]
    if side < rf:
        full = np.empty((3, n, rf, rf), dtype=np.float32)
        np.copyto(full, np.moveaxis(patches, 3, 0), casting="unsafe")
        reduce = area_matrix(rf, side).astype(np.float32)
        np.matmul(reduce @ full, reduce.T, out=planes.reshape(3, n, side, side))
        del full
    else:
        # one pass: uint8 (pixels, channel) -> float32 channel planes
        np.copyto(planes.reshape(3, -1), patches.reshape(-1, 3).T, casting="unsafe")
    luma = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    np.matmul(luma, planes.reshape(3, -1), out=out[0].reshape(-1))
    return out


def signal_buffer(buffer: np.ndarray | None, n: int, side: int) -> np.ndarray:
    """``buffer`` when it holds `fit_signals` of ``n`` patches of ``side`` pixels, else a larger one.

    Readers of many neurons keep the returned buffer and pass it back for the next neuron.
    """
    size = 4 * n * side * side
    if buffer is None or buffer.size < size:
        return np.empty(size, dtype=np.float32)
    return buffer


def noise_variances(rf: int, side: int) -> tuple[float, ...]:
    """Per-pixel variance of uint8 rounding in each fit's signals (``rank_deficient``)."""
    scale = 1.0
    if side < rf:
        reduce = area_matrix(rf, side)
        scale = float(np.mean(np.sum(reduce**2, axis=1))) ** 2  # averaging shrinks the noise
    luma = float(np.sum(np.square(LUMA_WEIGHTS)))
    return tuple(QUANTISATION_VARIANCE * scale * w for w in (luma, 1.0, 1.0, 1.0))


def neuron_fits(patches: np.ndarray, settings: FitSettings) -> NeuronFits:
    """The four fits of one neuron from its uint8 patches (n, rf, rf, 3) (n may be 0)."""
    patches = np.asarray(patches)
    rf = patches.shape[1] if patches.ndim == 4 else 0
    side = settings.side(rf)
    signals = fit_signals(patches, side)
    return _neuron_record([fit_sources(s, settings, noise_variance=v)
                           for s, v in zip(signals, noise_variances(rf, side))])


def block_fits(patches: Iterable[np.ndarray], settings: FitSettings) -> list[NeuronFits]:
    """`neuron_fits` of several neurons (of one layer), their fits solved together
    (`fit_sources_batch`): the same records, bit for bit. ``patches`` may be a
    generator: one neuron's patches and signals are held at a time."""
    queue = _FitQueue(settings, BATCH_BYTES, HELD_BYTES)
    buffer = None  # the signals of one neuron at a time (fits copy what they keep)
    for neuron_patches in patches:
        neuron_patches = np.asarray(neuron_patches)
        rf = neuron_patches.shape[1] if neuron_patches.ndim == 4 else 0
        side = settings.side(rf)
        buffer = signal_buffer(buffer, len(neuron_patches), side)
        signals = fit_signals(neuron_patches, side, out=buffer)
        for fit, noise_variance in enumerate(noise_variances(rf, side)):
            queue.add(signals[fit], noise_variance)
        del signals, neuron_patches  # before the next neuron's are read
    results = queue.results()
    return [_neuron_record(results[i:i + len(FITS)]) for i in range(0, len(results), len(FITS))]


def _neuron_record(fits: Sequence[FitResult]) -> NeuronFits:
    return NeuronFits(
        unmixing=np.stack([f.unmixing for f in fits]),
        explained_variance=np.stack([f.explained_variance for f in fits]),
        n_iter=np.array([f.n_iter for f in fits], dtype=np.int32),
        converged=np.array([f.converged for f in fits], dtype=bool),
        status=np.array([f.status for f in fits], dtype=np.int8),
        residual=np.array([f.residual for f in fits], dtype=np.float32),
        attempts=np.array([f.attempts for f in fits], dtype=np.int8),
    )


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Mode ``uint8``: each colour component min-max scaled to 0..255.

    Parameters
    ----------
    rgb
        float (n_components, rf, rf, 3).

    Returns
    -------
    numpy.ndarray
        uint8, same shape: ``round(255 * (x - min) / (max - min))`` with min and max over
        the component's three channels together (so its colours keep their balance).
        A component with a NaN (a failed channel fit) or no range is all 0.
    """
    rgb = np.asarray(rgb)
    out = np.zeros(rgb.shape, dtype=np.uint8)
    for j, component in enumerate(rgb):
        if not np.all(np.isfinite(component)):
            continue
        low, high = float(component.min()), float(component.max())
        if high > low:
            scaled = (component.astype(np.float64) - low) * (255.0 / (high - low))
            out[j] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def neuron_components(patches: np.ndarray, unmixing: np.ndarray, side: int,
                      out: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A neuron's ICs in the three modes from its patches and stored unmixing matrices.

    Parameters
    ----------
    patches
        uint8 (n, rf, rf, 3): the neuron's counted patches, the ones its fits used.
    unmixing
        float32 (4, n_components, >= n): the store's unmixing matrices (columns beyond
        ``n`` are unused).
    side
        Side of the components (the patches' after ``max_side``).
    out
        A float32 buffer for the signals, as `fit_signals` takes it (a reader of many
        neurons passes the same one: the components do not depend on it).

    Returns
    -------
    dict
        ``gray`` float32 (c, side, side), ``rgb`` float32 (c, side, side, 3), ``uint8``.
    """
    n = len(patches)
    n_components = unmixing.shape[1]
    if n == 0:
        gray = np.full((n_components, side, side), np.nan, dtype=np.float32)
        rgb = np.full((n_components, side, side, 3), np.nan, dtype=np.float32)
        return {"gray": gray, "rgb": rgb, "uint8": to_uint8(rgb)}
    signals = fit_signals(patches, side, out)
    sources = [components_from_unmixing(unmixing[f, :, :n], centre(signals[f], in_place=True)) for f in range(4)]
    gray = sources[0].reshape(n_components, side, side)
    rgb = np.stack([s.reshape(n_components, side, side) for s in sources[1:]], axis=-1)
    return {"gray": gray, "rgb": rgb, "uint8": to_uint8(rgb)}
