"""ICA solvers on a whitened matrix, and the one convergence yardstick they share.

Every fit whitens its data once (`whiten`: the k x k Gram matrix of the centred
patches, as scikit-learn's ``whiten_solver="eigh"`` does) and hands the solver the
whitened ``r``-row float32 matrix ``z`` (``r`` = components, pixels as samples). A
solver returns the rotation ``R`` (r x r, orthogonal) whose rows unmix ``z``: the
sources are ``R @ z``. Three solvers (config ``visualize.ica_solver``):

- ``picard_o`` (the default): Picard-O (Ablin, Cardoso and Gramfort, *Faster ICA under
  orthogonal constraint*, ICASSP 2018), the orthogonal, extended variant of
  ``python-picard``'s ``picard(ortho=True, extended=True, fun="tanh")``, step for step
  (L-BFGS with the same Hessian-approximation preconditioner, memory 7, the same
  backtracking line search on the same loss), evaluated in float32. Its fixed points
  are FastICA's (log-cosh contrast). python-picard casts the data to float64 (its
  ``whiten=False`` path) and then spends 70 % of a fit in float64 transcendental
  functions; in float32 a fit is 2-3x faster with the same answer (tests compare the
  two).
- ``python_picard``: the ``python-picard`` package itself on the same whitened matrix and
  the same initial rotation (float64 inside).
- ``fastica``: scikit-learn's `FastICA` (parallel, log-cosh,
  ``whiten=False``) on the same whitened matrix and initial rotation.

**Converged** means the solver's own criterion was met within ``max_iter`` iterations:
for Picard-O, the largest entry of the (skew-symmetric) relative gradient is below
``tol``; for FastICA, one fixed-point update changes no row by more than ``tol``
(``max |1 - |<w_new, w>|| < tol``). Whatever the solver, `fixed_point_residual`
measures the answer by FastICA's own criterion (one FastICA update from it), so fits of
different solvers are compared on one scale.

With one BLAS thread every function here is deterministic: the same input gives the
same bits. `picard_o_batch` runs `picard_o` on a stack of fits at once (each
its own signs, memory, line search and convergence) and gives each fit the bits
`picard_o` gives it alone; it saves the interpreter's cost per operation, which is
most of a small fit's time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

#: Selectable solvers (config ``visualize.ica_solver``); the first is the default.
SOLVERS: tuple[str, ...] = ("picard_o", "python_picard", "fastica")
DEFAULT_SOLVER = SOLVERS[0]
#: Picard-O's L-BFGS memory, line-search tries and Hessian floor (python-picard's defaults).
LBFGS_MEMORY = 7
LINE_SEARCH_TRIES = 10
LAMBDA_MIN = 0.01


@dataclass(frozen=True)
class Whitened:
    """A whitened fit input: ``z = basis @ centred``, rows uncorrelated with unit variance."""

    z: np.ndarray  # float32 (r, pixels)
    basis: np.ndarray  # float64 (r, n): rows u_j / sqrt(lambda_j) * sqrt(pixels)
    eigenvalues: np.ndarray  # float64 (n,): of centred @ centred.T, descending, >= 0
    vectors: np.ndarray  # float64 (n, r): the leading eigenvectors u_j


@dataclass(frozen=True)
class Solution:
    """A solver's answer: sources ``rotation @ z``."""

    rotation: np.ndarray  # float64 (r, r), orthogonal
    n_iter: int
    converged: bool


def centre(signals: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """float32 copy of ``signals`` (n, pixels) with each row's mean removed.

    ``in_place``: subtract in ``signals`` itself (float32, the same bits as the copy) and
    return it; a reader that needs the signals only centred saves a copy.
    """
    signals = np.asarray(signals, dtype=np.float32)
    means = signals.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    if in_place:
        signals -= means
        return signals
    return signals - means


def gram_eigen(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors of ``centred @ centred.T``.

    The Gram matrix is formed in float32 (the costly part, one pass over the data) and
    decomposed in float64.
    """
    gram = (centred @ centred.T).astype(np.float64)
    values, vectors = np.linalg.eigh(gram)
    return np.clip(values[::-1], 0.0, None), vectors[:, ::-1]


def whiten(
    centred: np.ndarray, n_components: int, eigen: tuple[np.ndarray, np.ndarray] | None = None
) -> Whitened:
    """Project centred signals (n, pixels) on their ``n_components`` leading PCA directions.

    Each row of ``z`` has unit variance over the pixels (``z @ z.T / pixels = I``), as in
    scikit-learn's ``whiten="unit-variance"``. ``eigen`` is `gram_eigen` of
    ``centred`` when the caller has it already. Raises ``ValueError`` when a kept
    direction has zero variance (callers check the rank first).
    """
    n, pixels = centred.shape
    if not 1 <= n_components <= n:
        raise ValueError(f"n_components must be in 1..{n}, got {n_components}")
    eigenvalues, vectors = gram_eigen(centred) if eigen is None else eigen
    kept = eigenvalues[:n_components]
    if not np.all(kept > 0):
        raise ValueError(f"a whitened direction has zero variance (eigenvalues {kept})")
    basis = (vectors[:, :n_components] / np.sqrt(kept)).T * np.sqrt(pixels)
    z = basis.astype(np.float32) @ centred
    return Whitened(z, basis, eigenvalues, vectors[:, :n_components])


def initial_rotation(r: int, seed: int) -> np.ndarray:
    """Random orthogonal r x r start, as python-picard draws it: ``(G G^T)^(-1/2) G``,
    ``G`` standard normal from ``numpy.random.RandomState(seed)``."""
    gaussian = np.random.RandomState(seed).normal(size=(r, r))
    return _sym_decorrelation(gaussian)


def _sym_decorrelation(w: np.ndarray) -> np.ndarray:
    s, u = np.linalg.eigh(w @ w.T)
    return (u * (1.0 / np.sqrt(s))) @ u.T @ w


def _log_cosh_means(y: np.ndarray) -> np.ndarray:
    """Per row, the mean over samples of ``log cosh(y) + log 2`` (python-picard's Tanh
    log-likelihood ``|y| + log1p(exp(-2|y|))``), float32 terms summed in float64."""
    absolute = np.abs(y)
    terms = absolute * np.float32(-2.0)
    np.exp(terms, out=terms)
    np.log1p(terms, out=terms)
    terms += absolute
    return terms.sum(axis=1, dtype=np.float64) / y.shape[1]


def _picard_loss(y: np.ndarray, signs: np.ndarray) -> float:
    return float(np.dot(signs, _log_cosh_means(y)))


def picard_o(z: np.ndarray, w_init: np.ndarray, *, max_iter: int, tol: float) -> Solution:
    """Picard-O (orthogonal, extended, tanh density) on whitened float32 data ``z`` (r, T).

    The algorithm of python-picard's ``core_picard(ortho=True, extended=True)``, with the
    data and the sources in float32 and the small r x r quantities in float64. The
    sources are always recomputed as ``W @ z`` (no drift from accumulated rotations).
    """
    z = np.ascontiguousarray(z, dtype=np.float32)
    r, samples = z.shape
    covariance = (z @ z.T).astype(np.float64) / samples  # ~I; python-picard uses the empirical one
    w = np.asarray(w_init, dtype=np.float64)
    y = w.astype(np.float32) @ z
    signs = np.ones(r)
    old_signs = signs
    current_loss: float | None = _picard_loss(y, signs)
    s_list: list[np.ndarray] = []
    y_list: list[np.ndarray] = []
    r_list: list[float] = []
    g_old = direction = None
    converged = False
    n = 0
    for n in range(max_iter):
        psi = np.tanh(y)
        g = (psi @ y.T).astype(np.float64) / samples
        psi_der_mean = 1.0 - np.square(psi, out=psi).sum(axis=1, dtype=np.float64) / samples
        del psi
        # extended: each source's sign of "kurtosis" decides sub- or super-Gaussian
        c_diag = np.einsum("ij,jk,ik->i", w, covariance, w)
        signs = np.sign(psi_der_mean * c_diag - np.diag(g))
        sign_change = n > 0 and bool(np.any(signs != old_signs))
        old_signs = signs
        g *= signs[:, None]
        psi_der_mean = psi_der_mean * signs
        h_off = np.diag(g).copy()
        h = 0.5 * (psi_der_mean[:, None] + psi_der_mean[None, :] - h_off[:, None] - h_off[None, :])
        h[h < LAMBDA_MIN] = LAMBDA_MIN
        g = (g - g.T) / 2
        if np.max(np.abs(g)) < tol:
            converged = True
            break
        if n > 0:
            step = g - g_old
            curvature = np.sum(direction * step)
            # (python-picard keeps every pair; in float32 a step can vanish near the
            # precision floor, and 1 / 0 would poison the memory)
            if curvature != 0 and np.isfinite(curvature):
                s_list.append(direction)
                y_list.append(step)
                r_list.append(1.0 / curvature)
            if len(s_list) > LBFGS_MEMORY:
                s_list.pop(0), y_list.pop(0), r_list.pop(0)
        g_old = g
        if sign_change:
            current_loss = None
            s_list, y_list, r_list = [], [], []
        direction = _lbfgs_direction(g, h, s_list, y_list, r_list)
        accepted, y_new, w_new, new_loss, direction = _line_search(
            z, w, direction, signs, current_loss, LINE_SEARCH_TRIES)
        if not accepted:  # python-picard: fall back to the gradient and forget the memory
            direction = -g
            s_list, y_list, r_list = [], [], []
            _, y_new, w_new, new_loss, direction = _line_search(z, w, direction, signs, current_loss, 10)
        y, w, current_loss = y_new, w_new, new_loss
    return Solution(w, n, converged)


def _lbfgs_direction(g, h, s_list, y_list, r_list) -> np.ndarray:
    q = g.copy()
    a_list = []
    for s, y, rho in zip(reversed(s_list), reversed(y_list), reversed(r_list)):
        alpha = rho * np.sum(s * q)
        a_list.append(alpha)
        q -= alpha * y
    z = q / h
    z = (z - z.T) / 2.0
    for s, y, rho, alpha in zip(s_list, y_list, r_list, reversed(a_list)):
        beta = rho * np.sum(y * z)
        z += (alpha - beta) * s
    return -z


def _line_search(z, w, direction, signs, current_loss, tries):
    if current_loss is None:
        current_loss = _picard_loss(w.astype(np.float32) @ z, signs)
    alpha = 1.0
    for _ in range(tries):
        w_new = expm(alpha * direction) @ w
        with np.errstate(over="ignore", invalid="ignore"):
            y_new = w_new.astype(np.float32) @ z
            new_loss = _picard_loss(y_new, signs)
        if np.isfinite(new_loss) and new_loss < current_loss:
            return True, y_new, w_new, new_loss, alpha * direction
        alpha /= 2.0
    return False, y_new, w_new, new_loss, alpha * direction


def python_picard(z: np.ndarray, w_init: np.ndarray, *, max_iter: int, tol: float) -> Solution:
    """python-picard's ``picard(ortho=True, extended=True, whiten=False)`` (float64 inside)."""
    from picard import picard  # optional at import time: only this solver needs it

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, w, _, n_iter = picard(
            z, ortho=True, extended=True, whiten=False, w_init=w_init, max_iter=max_iter, tol=tol,
            return_n_iter=True,
        )
    converged = not any("did not converge" in str(item.message) for item in caught)
    return Solution(np.asarray(w, dtype=np.float64), int(n_iter), converged)


def fastica(z: np.ndarray, w_init: np.ndarray, *, max_iter: int, tol: float) -> Solution:
    """scikit-learn's parallel FastICA (log-cosh) on the whitened data (``whiten=False``)."""
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    ica = FastICA(whiten=False, fun="logcosh", algorithm="parallel", w_init=w_init, max_iter=max_iter, tol=tol)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ica.fit(z.T)
    converged = not any(issubclass(item.category, ConvergenceWarning) for item in caught)
    return Solution(np.asarray(ica.components_, dtype=np.float64), int(ica.n_iter_), converged)


_SOLVE = {"picard_o": picard_o, "python_picard": python_picard, "fastica": fastica}


def solve(solver: str, z: np.ndarray, *, max_iter: int, tol: float, seed: int) -> Solution:
    """Run ``solver`` (one of `SOLVERS`) on whitened ``z`` from `initial_rotation`."""
    if solver not in _SOLVE:
        raise ValueError(f"unknown ICA solver {solver!r}; choose one of {SOLVERS}")
    return _SOLVE[solver](z, initial_rotation(len(z), seed), max_iter=max_iter, tol=tol)


def fixed_point_residual(rotation: np.ndarray, z: np.ndarray) -> float:
    """FastICA's convergence measure at ``rotation``: ``max_i |1 - |<w_new_i, w_i>||``.

    ``w_new`` is one parallel FastICA update (log-cosh, ``alpha = 1``) from ``rotation``:
    ``E[tanh(w z) z^T] - E[1 - tanh^2(w z)] w``, symmetrically decorrelated. 0 at a fixed
    point of FastICA (and of Picard-O); scikit-learn stops when it is below ``tol``.
    Computed in float64.
    """
    z = np.asarray(z, dtype=np.float64)
    w = np.asarray(rotation, dtype=np.float64)
    g = np.tanh(w @ z)
    update = g @ z.T / z.shape[1] - (1.0 - g * g).mean(axis=1)[:, None] * w
    update = _sym_decorrelation(update)
    return float(np.max(np.abs(np.abs(np.einsum("ij,ij->i", update, w)) - 1.0)))


def picard_o_batch(z: np.ndarray, w_init: np.ndarray, *, max_iter: int, tol: float) -> list[Solution]:
    """`picard_o` on a stack of fits at once, each with its own state and convergence.

    ``z`` float32 (fits, r, T), ``w_init`` (fits, r, r). Every fit runs the iterations of
    `picard_o` with the same operations on its own slice (its own signs, L-BFGS memory,
    line search and step), so its answer is the one `picard_o` gives on it alone, bit
    for bit; a fit that converges leaves the stack. What the stack saves is the
    interpreter's cost per operation, which dominates small fits. Returns one
    `Solution` per fit, in order.
    """
    z = np.ascontiguousarray(z, dtype=np.float32)
    if z.ndim != 3 or w_init.shape != (len(z), z.shape[1], z.shape[1]):
        raise ValueError(f"z must be (fits, r, T) and w_init (fits, r, r), got {z.shape}, {w_init.shape}")
    fits, r, samples = z.shape
    results: list[Solution | None] = [None] * fits
    if fits == 0:
        return []
    index = np.arange(fits)  # the caller's position of each row of the state
    covariance = np.matmul(z, z.transpose(0, 2, 1)).astype(np.float64) / samples
    w = np.array(w_init, dtype=np.float64)
    y = np.matmul(w.astype(np.float32), z)
    signs = np.ones((fits, r))
    old_signs = signs
    current_loss = _picard_losses(y, signs)
    loss_known = np.ones(fits, dtype=bool)
    # L-BFGS memory per fit: a ring of LBFGS_MEMORY pairs, `count` of them from slot `first` on
    memory = _Memory(fits, r)
    g_old = np.zeros((fits, r, r))
    direction = np.zeros((fits, r, r))
    diagonal = np.arange(r)
    n = 0
    for n in range(max_iter):
        psi = np.tanh(y)
        g = np.matmul(psi, y.transpose(0, 2, 1)).astype(np.float64) / samples
        psi_der_mean = 1.0 - np.square(psi, out=psi).sum(axis=2, dtype=np.float64) / samples
        del psi
        c_diag = np.einsum("bij,bjk,bik->bi", w, covariance, w)
        signs = np.sign(psi_der_mean * c_diag - g[:, diagonal, diagonal])
        sign_change = np.any(signs != old_signs, axis=1) if n > 0 else np.zeros(len(w), dtype=bool)
        old_signs = signs
        g *= signs[:, :, None]
        psi_der_mean = psi_der_mean * signs
        h_off = g[:, diagonal, diagonal].copy()
        h = 0.5 * (psi_der_mean[:, :, None] + psi_der_mean[:, None, :] - h_off[:, :, None] - h_off[:, None, :])
        h[h < LAMBDA_MIN] = LAMBDA_MIN
        g = (g - g.transpose(0, 2, 1)) / 2
        done = np.abs(g).reshape(len(g), -1).max(axis=1) < tol
        if done.any():
            for row in np.flatnonzero(done):
                results[index[row]] = Solution(w[row], n, True)
            keep = np.flatnonzero(~done)
            if not len(keep):
                break
            (index, z, covariance, w, y, signs, current_loss, loss_known, g_old, direction, g, h, sign_change) = (
                a[keep] for a in (index, z, covariance, w, y, signs, current_loss, loss_known, g_old, direction, g,
                                  h, sign_change))
            old_signs = signs
            memory.keep(keep)
        if n > 0:
            step = g - g_old
            curvature = (direction * step).reshape(len(g), -1).sum(axis=1)
            # (python-picard keeps every pair; in float32 a step can vanish near the
            # precision floor, and 1 / 0 would poison the memory)
            rows = np.flatnonzero((curvature != 0) & np.isfinite(curvature))
            memory.append(rows, direction[rows], step[rows], 1.0 / curvature[rows])
        g_old = g
        memory.forget(sign_change)
        loss_known &= ~sign_change
        direction = memory.direction(g, h)
        accepted, y_new, w_new, new_loss, direction = _line_searches(
            z, w, direction, signs, current_loss, loss_known, LINE_SEARCH_TRIES)
        if not accepted.all():  # python-picard: fall back to the gradient and forget the memory
            back = np.flatnonzero(~accepted)
            memory.forget(~accepted)
            _, y_b, w_b, loss_b, dir_b = _line_searches(
                z[back], w[back], -g[back], signs[back], current_loss[back], loss_known[back], 10)
            y_new[back], w_new[back], new_loss[back], direction[back] = y_b, w_b, loss_b, dir_b
        y, w, current_loss = y_new, w_new, new_loss
        loss_known = np.ones(len(w), dtype=bool)
    for row, position in enumerate(index):
        if results[position] is None:
            results[position] = Solution(w[row], n, False)
    return results  # type: ignore[return-value]


class _Memory:
    """The L-BFGS memories of a stack of fits: per fit a ring of `LBFGS_MEMORY` pairs."""

    def __init__(self, fits: int, r: int) -> None:
        self.s = np.zeros((fits, LBFGS_MEMORY, r, r))
        self.y = np.zeros((fits, LBFGS_MEMORY, r, r))
        self.rho = np.zeros((fits, LBFGS_MEMORY))
        self.first = np.zeros(fits, dtype=np.int64)  # slot of the oldest pair
        self.count = np.zeros(fits, dtype=np.int64)

    def keep(self, rows: np.ndarray) -> None:
        self.s, self.y, self.rho, self.first, self.count = (
            a[rows] for a in (self.s, self.y, self.rho, self.first, self.count))

    def forget(self, rows: np.ndarray) -> None:
        self.count[rows] = 0
        self.first[rows] = 0

    def append(self, rows: np.ndarray, s: np.ndarray, y: np.ndarray, rho: np.ndarray) -> None:
        """Add a pair to each fit of ``rows``; a full memory drops its oldest."""
        count, first = self.count[rows], self.first[rows]
        full = count == LBFGS_MEMORY
        slot = np.where(full, first, (first + count) % LBFGS_MEMORY)
        self.s[rows, slot], self.y[rows, slot], self.rho[rows, slot] = s, y, rho
        self.first[rows] = np.where(full, (first + 1) % LBFGS_MEMORY, first)
        self.count[rows] = np.where(full, count, count + 1)

    def _pair(self, rows: np.ndarray, age: np.ndarray):
        """Pair number ``age`` (0 = oldest) of each fit of ``rows``."""
        slot = (self.first[rows] + age) % LBFGS_MEMORY
        return self.s[rows, slot], self.y[rows, slot], self.rho[rows, slot]

    def direction(self, g: np.ndarray, h: np.ndarray) -> np.ndarray:
        """`_lbfgs_direction` of each fit from its own memory."""
        q = g.copy()
        count = self.count
        depth = int(count.max()) if len(count) else 0
        alphas = np.zeros((len(g), max(depth, 1)))
        for t in range(depth):  # newest pair first
            rows = np.flatnonzero(count > t)
            s, y, rho = self._pair(rows, count[rows] - 1 - t)
            alpha = rho * (s * q[rows]).reshape(len(rows), -1).sum(axis=1)
            alphas[rows, t] = alpha
            q[rows] -= alpha[:, None, None] * y
        z = q / h
        z = (z - z.transpose(0, 2, 1)) / 2.0
        for age in range(depth):  # oldest pair first
            rows = np.flatnonzero(count > age)
            s, y, rho = self._pair(rows, np.full(len(rows), age))
            alpha = alphas[rows, count[rows] - 1 - age]
            beta = rho * (y * z[rows]).reshape(len(rows), -1).sum(axis=1)
            z[rows] += (alpha - beta)[:, None, None] * s
        return -z


def _picard_losses(y: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """`_picard_loss` of each fit of a stack: y (fits, r, T), signs (fits, r)."""
    absolute = np.abs(y)
    terms = absolute * np.float32(-2.0)
    np.exp(terms, out=terms)
    np.log1p(terms, out=terms)
    terms += absolute
    means = terms.sum(axis=2, dtype=np.float64) / y.shape[2]
    # matmul of (1, r) by (r, 1) calls the same BLAS dot as np.dot: the same bits
    return np.matmul(signs[:, None, :], means[:, :, None])[:, 0, 0]


def _line_searches(z, w, direction, signs, current_loss, loss_known, tries):
    """`_line_search` of each fit of a stack, each with its own step."""
    current_loss = current_loss.copy()
    unknown = np.flatnonzero(~loss_known)
    if len(unknown):
        current_loss[unknown] = _picard_losses(np.matmul(w[unknown].astype(np.float32), z[unknown]), signs[unknown])
    fits = len(w)
    alpha = np.ones(fits)
    accepted = np.zeros(fits, dtype=bool)
    searching = np.arange(fits)
    y_out = w_out = loss_out = None
    for _ in range(tries):
        every = len(searching) == fits
        w_new = np.matmul(expm(alpha[searching, None, None] * direction[searching]), w[searching])
        with np.errstate(over="ignore", invalid="ignore"):
            y_new = np.matmul(w_new.astype(np.float32), z if every else z[searching])
            new_loss = _picard_losses(y_new, signs[searching])
        if y_out is None:  # the first try: every fit
            y_out, w_out, loss_out = y_new, w_new, new_loss
        else:
            y_out[searching], w_out[searching], loss_out[searching] = y_new, w_new, new_loss
        ok = np.isfinite(new_loss) & (new_loss < current_loss[searching])
        accepted[searching[ok]] = True
        alpha[searching[~ok]] /= 2.0
        searching = searching[~ok]
        if not len(searching):
            break
    return accepted, y_out, w_out, loss_out, alpha[:, None, None] * direction
