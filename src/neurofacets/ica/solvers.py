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
same bits.
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


def centre(signals: np.ndarray) -> np.ndarray:
    """float32 copy of ``signals`` (n, pixels) with each row's mean removed."""
    signals = np.asarray(signals, dtype=np.float32)
    return signals - signals.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)


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
        psi_der_mean = 1.0 - (psi * psi).sum(axis=1, dtype=np.float64) / samples
        g = (psi @ y.T).astype(np.float64) / samples
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
