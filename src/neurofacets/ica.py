"""Independent components of each neuron's receptive-field patches (DESIGN.md section 3).

Each of a neuron's ``n`` counted top-k patches is one mixed signal; its pixels are the
samples. scikit-learn's :class:`~sklearn.decomposition.FastICA` (``n_components`` from
the config, ``whiten="unit-variance"``, ``whiten_solver="eigh"``, ``random_state=seed``,
``max_iter``, ``tol``) on the matrix ``X`` (pixels x n) returns the sources ``S`` (pixels x
n_components), each reshaped into an ``rf x rf`` image: the neuron's independent
components (ICs). Four fits per neuron:

- ``gray``: the luminance patches, ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601);
- ``red``, ``green``, ``blue``: one ICA per channel. Mode ``rgb`` stacks channel i's
  component j into colour image j; mode ``uint8`` is that colour image min-max scaled
  to 0..255 (see :func:`to_uint8`).

Rules that make the same input always give the same picture (each fit on its own, so
the three channel fits of ``rgb`` follow them per channel):

- **Order**: by decreasing variance the component explains in the patches. FastICA's
  model is ``Xc = S A^T`` (``Xc``: each patch minus its own mean; ``A`` = ``mixing_``,
  n x n_components; the sources have unit variance and are uncorrelated), so component j
  contributes ``||A[:, j]||^2 * var(S_j) = ||A[:, j]||^2`` to the total variance
  ``sum_i var(Xc[:, i])`` of the patches. The stored ``explained_variance`` is that share
  divided by the total (a fraction; the n_components shares add up to the part of the
  variance the fit's PCA subspace keeps). Ties keep FastICA's order.
- **Sign**: each component is multiplied by -1 or 1 so that it correlates positively
  with the mean patch of its fit (the mean over the n patches of the same luminance or
  channel values): ``sum_p S_j[p] * (m[p] - mean(m)) > 0``. Where that sum is exactly 0
  (e.g. a uniform mean patch), the pixel of largest ``|S_j|`` (first in row-major order)
  is made positive instead.
- The channel ICs of component j in ``rgb`` are the j-th of each channel's own order: the
  three fits are independent, so "j" means "j-th strongest in that channel".

Each fit records ``n_iter`` (FastICA's ``n_iter_``), ``converged`` (False when
scikit-learn raised its ConvergenceWarning, i.e. ``tol`` was not reached within
``max_iter`` iterations) and a status (:data:`STATUS`), checked in this order:

- ``too_few_patches``: fewer counted patches than ``max(2, n_components)``: no fit, NaN.
- ``constant``: every patch is uniform (zero variance once each patch's mean is removed):
  no fit, NaN. Uniform patches among others are left out of the fit: centred, they are
  zero and change nothing but would trip scikit-learn's eigenvector sign rule.
- ``rank_deficient``: fewer than ``n_components`` directions of the (per-patch centred)
  data carry variance, i.e. PCA eigenvalue ``lambda_j`` (of ``Xc^T Xc``) below
  ``RANK_RTOL**2 * lambda_1`` (the float32 precision of the whitening) or a per-pixel
  variance ``lambda_j / pixels`` below that of uint8 rounding (1/12 for one channel,
  ``sum(w**2)/12`` for luminance). The fit is redone with that many components
  ``r`` and components ``r..n_components-1`` are NaN. The eigenvalues come from
  FastICA's own whitening matrix (its row norms are ``1 / sqrt(lambda_j)``), or, when
  FastICA broke down on a direction of zero variance (NaN), from an exact float64
  eigendecomposition of the k x k Gram matrix.
- ``failed``: FastICA raised or returned non-finite values even with the reduced number
  of components (not seen in practice; a safety net so a layer job never crashes): NaN.
- ``not_converged``: the fit stopped at ``max_iter``; its components are kept.
- ``ok``.

Arithmetic is float32 (twice as fast as float64 here) with BLAS pinned to one thread,
which makes every result bit-identical from run to run and independent of how neurons
are spread over worker processes.

Output store ``ica/{layer}.zarr`` (zarr v3), neurons in channel order, one chunk per
neuron (a few for tiny patches):

- ``gray`` float32 (neurons, n_components, rf, rf); ``rgb`` float32 (neurons,
  n_components, rf, rf, 3); ``uint8`` uint8 (neurons, n_components, rf, rf, 3);
- ``explained_variance`` float32 (neurons, 4, n_components), ``n_iter`` int32 (neurons, 4),
  ``converged`` bool (neurons, 4), ``status`` int8 (neurons, 4): the second axis is the
  fit, in the order of the attribute ``fits`` = ["gray", "red", "green", "blue"];
- ``n_counted`` int32 (neurons,): patches each neuron's ICA used;
- attributes: provenance, ``status_codes`` ({code: name}), ``fits``, ``luma_weights``,
  ``n_components``, ``max_iter``, ``tol``, ``seed``, ``rank_rtol``, ``layer``, ``rf``.
"""

from __future__ import annotations

import logging
import multiprocessing
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits
from tqdm import tqdm
from zarr.codecs import BloscCodec, ZstdCodec

from .patches import WRITE_EVERY_CHUNK, neurons_per_chunk
from .provenance import provenance_attrs
from .store import atomic_output

logger = logging.getLogger("neurofacets.ica")

#: Fit names, the order of the second axis of n_iter / converged / status / explained_variance.
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
#: Sources are noise-like floats: byte shuffling + fast zstd gets ~1.2x (plain zstd ~1.09x).
FLOAT_COMPRESSOR = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle", typesize=4)
UINT8_COMPRESSOR = ZstdCodec(level=1)
#: Variance of uint8 rounding of one channel (uniform error on [-0.5, 0.5]).
QUANTISATION_VARIANCE = 1.0 / 12.0


@dataclass(frozen=True)
class FitResult:
    """One FastICA fit, ordered and signed (see the module docstring)."""

    sources: np.ndarray  # float32 (n_components, pixels); NaN rows where no component
    explained_variance: np.ndarray  # float32 (n_components,), fraction of the patch variance
    n_iter: int
    converged: bool
    status: int


@dataclass(frozen=True)
class NeuronICA:
    """The ICs of one neuron in the three modes, with the record of its four fits."""

    gray: np.ndarray  # float32 (n_components, rf, rf)
    rgb: np.ndarray  # float32 (n_components, rf, rf, 3)
    uint8: np.ndarray  # uint8 (n_components, rf, rf, 3)
    explained_variance: np.ndarray  # float32 (4, n_components), fits in FITS order
    n_iter: np.ndarray  # int32 (4,)
    converged: np.ndarray  # bool (4,)
    status: np.ndarray  # int8 (4,)


def _failed(n_components: int, pixels: int, status: str) -> FitResult:
    return FitResult(
        sources=np.full((n_components, pixels), np.nan, dtype=np.float32),
        explained_variance=np.full(n_components, np.nan, dtype=np.float32),
        n_iter=0,
        converged=False,
        status=STATUS_CODE[status],
    )


def _fastica(signals: np.ndarray, n_components: int, max_iter: int, tol: float, seed: int):
    """Plain scikit-learn FastICA on X = signals.T.

    Returns (model, sources (pixels, n_components), converged), or None when FastICA
    raised or returned non-finite values (a degenerate whitening).
    """
    ica = FastICA(
        n_components=n_components,
        whiten="unit-variance",
        whiten_solver="eigh",  # k x k covariance: far cheaper than an SVD when pixels >> k
        random_state=seed,
        max_iter=max_iter,
        tol=tol,
    )
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            sources = ica.fit_transform(signals.T)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None
    if not (np.all(np.isfinite(sources)) and np.all(np.isfinite(ica.mixing_))):
        return None
    if sources.shape[1] != n_components:  # sklearn lowered n_components (more than pixels)
        return None
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return ica, sources, converged


def pca_eigenvalues(signals: np.ndarray) -> np.ndarray:
    """Eigenvalues (descending, float64) of ``Xc^T Xc``, ``Xc`` the per-patch centred ``signals.T``."""
    centred = signals.astype(np.float64)
    centred -= centred.mean(axis=1, keepdims=True)
    return np.clip(np.linalg.eigvalsh(centred @ centred.T)[::-1], 0.0, None)


def _leading_rank(eigenvalues: np.ndarray, pixels: int, noise_variance: float) -> int:
    """How many leading PCA directions carry variance (see ``rank_deficient``)."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    if eigenvalues.size == 0 or not np.isfinite(eigenvalues[0]) or eigenvalues[0] <= 0:
        return 0
    strong = np.isfinite(eigenvalues) & (eigenvalues >= RANK_RTOL**2 * eigenvalues[0])
    strong &= eigenvalues / pixels >= noise_variance
    return int(np.argmin(strong)) if not strong.all() else len(strong)


def fit_sources(
    signals: np.ndarray,
    *,
    n_components: int,
    max_iter: int,
    tol: float,
    seed: int,
    noise_variance: float = QUANTISATION_VARIANCE,
) -> FitResult:
    """FastICA of mixed signals (one per row) with pixels as samples, ordered and signed.

    Parameters
    ----------
    signals
        float32 (n, pixels): each row one flattened patch (of one channel or luminance).
        scikit-learn sees ``X = signals.T`` (pixels x n).
    n_components
        Independent components to extract.
    max_iter, tol, seed
        FastICA's ``max_iter``, ``tol`` and ``random_state``.
    noise_variance
        Per-pixel variance below which a PCA direction counts as rounding noise
        (``rank_deficient``).

    Returns
    -------
    FitResult
        Sources (n_components, pixels), NaN rows where the data had fewer directions.
    """
    if signals.ndim != 2:
        raise ValueError(f"signals must be (n, pixels), got shape {signals.shape}")
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    signals = np.ascontiguousarray(signals, dtype=np.float32)
    n, pixels = signals.shape
    if n < max(2, n_components):
        return _failed(n_components, pixels, "too_few_patches")
    varying = np.any(signals != signals[:, :1], axis=1)
    if not varying.any():
        return _failed(n_components, pixels, "constant")
    # Uniform patches are zero once centred: they add nothing to the fit, and dropping them
    # avoids a scikit-learn breakdown (its eigenvector sign rule np.sign(u[0]) zeroes every
    # direction when the first patch is uniform).
    mixed = signals if varying.all() else signals[varying]

    attempt = _fastica(mixed, n_components, max_iter, tol, seed)
    if attempt is not None:
        # PCA eigenvalues of the centred data, recovered from the whitening K = (u / d).T:
        # row j of K has norm 1 / d_j, and lambda_j = d_j ** 2 (no extra cost)
        with np.errstate(divide="ignore"):
            eigenvalues = 1.0 / np.sum(np.square(attempt[0].whitening_, dtype=np.float64), axis=1)
    else:
        # FastICA broke down (a whitened direction of zero variance): find out why, exactly
        eigenvalues = pca_eigenvalues(mixed)[:n_components]
    rank = _leading_rank(eigenvalues, pixels, noise_variance)
    if rank < n_components:
        if rank == 0:
            return _failed(n_components, pixels, "rank_deficient")
        attempt = _fastica(mixed, rank, max_iter, tol, seed)
        status = "rank_deficient"
    if attempt is None:
        return _failed(n_components, pixels, "failed")
    ica, sources, converged = attempt
    if rank == n_components:
        status = "ok" if converged else "not_converged"

    # order: variance explained in the patches, ||A[:, j]||^2 (unit-variance sources;
    # uniform patches have zero rows in A and zero variance)
    total_variance = float(np.sum(mixed.var(axis=1), dtype=np.float64))
    share = np.sum(np.square(ica.mixing_, dtype=np.float64), axis=0) / total_variance
    order = np.argsort(-share, kind="stable")
    sources = sources[:, order].T  # (r, pixels)
    share = share[order]
    # sign: positive correlation with the mean patch (sources have zero mean)
    mean_patch = signals.mean(axis=0, dtype=np.float64)
    alignment = sources.astype(np.float64) @ (mean_patch - mean_patch.mean())
    fallback = np.sign(sources[np.arange(len(sources)), np.argmax(np.abs(sources), axis=1)])
    signs = np.where(alignment != 0, np.sign(alignment), fallback).astype(np.float32)
    sources = sources * signs[:, None]

    out = np.full((n_components, pixels), np.nan, dtype=np.float32)
    out[: len(sources)] = sources
    variance = np.full(n_components, np.nan, dtype=np.float32)
    variance[: len(share)] = share
    return FitResult(out, variance, int(ica.n_iter_), bool(converged), STATUS_CODE[status])


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


def neuron_ica(
    patches: np.ndarray, *, n_components: int, max_iter: int, tol: float, seed: int
) -> NeuronICA:
    """ICs of one neuron in the modes gray, rgb and uint8 (four FastICA fits).

    Parameters
    ----------
    patches
        uint8 (n, rf, rf, 3): the neuron's counted patches (n may be 0).
    n_components, max_iter, tol, seed
        FastICA settings (config ``visualize.*``).
    """
    patches = np.asarray(patches)
    if patches.ndim != 4 or patches.shape[1] != patches.shape[2] or patches.shape[3] != 3:
        raise ValueError(f"patches must be (n, rf, rf, 3), got shape {patches.shape}")
    n, rf = patches.shape[0], patches.shape[1]
    pixels = rf * rf
    # channel planes as contiguous float32 rows (n, pixels); luminance by one BLAS pass
    planes = np.empty((3, n, pixels), dtype=np.float32)
    for c in range(3):
        planes[c] = patches[..., c].reshape(n, pixels)
    luma = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    gray_signals = (luma @ planes.reshape(3, -1)).reshape(n, pixels)
    settings = dict(n_components=n_components, max_iter=max_iter, tol=tol, seed=seed)
    luma_noise = float(np.sum(np.square(LUMA_WEIGHTS))) * QUANTISATION_VARIANCE
    fits = [fit_sources(gray_signals, noise_variance=luma_noise, **settings)]
    fits += [fit_sources(planes[c], **settings) for c in range(3)]

    gray = fits[0].sources.reshape(n_components, rf, rf)
    rgb = np.stack([f.sources.reshape(n_components, rf, rf) for f in fits[1:]], axis=-1)
    return NeuronICA(
        gray=gray,
        rgb=rgb,
        uint8=to_uint8(rgb),
        explained_variance=np.stack([f.explained_variance for f in fits]),
        n_iter=np.array([f.n_iter for f in fits], dtype=np.int32),
        converged=np.array([f.converged for f in fits], dtype=bool),
        status=np.array([f.status for f in fits], dtype=np.int8),
    )


# ----------------------------------------------------------------------------- layer job


@dataclass(frozen=True)
class _Task:
    start: int
    patches: np.ndarray  # uint8 (neurons, k, rf, rf, 3)
    n_counted: np.ndarray  # (neurons,)
    settings: Mapping[str, Any]


def _run_task(task: _Task) -> tuple[int, dict[str, np.ndarray]]:
    """Worker: the ICs of a block of neurons, stacked per output array."""
    results = [
        neuron_ica(task.patches[i, : int(task.n_counted[i])], **task.settings) for i in range(len(task.n_counted))
    ]
    names = ("gray", "rgb", "uint8", "explained_variance", "n_iter", "converged", "status")
    return task.start, {name: np.stack([getattr(r, name) for r in results]) for name in names}


def _pin_blas() -> None:
    """Worker initialiser: one BLAS thread per worker process (for speed and determinism)."""
    threadpool_limits(limits=1)


def _ordered_map(fn: Callable[[_Task], Any], tasks: Iterable[_Task], workers: int) -> Iterator[Any]:
    """``map(fn, tasks)`` in order over ``workers`` processes, at most 2 tasks per worker in flight.

    The window keeps memory bounded (tasks carry patch arrays) while results are still
    consumed in task order, so the output does not depend on the number of workers.
    """
    if workers == 1:
        with threadpool_limits(limits=1):
            for task in tasks:
                yield fn(task)
        return
    # spawn, not fork: the parent runs zarr's I/O thread, which a forked child would inherit
    # in a broken state
    context = multiprocessing.get_context("spawn")
    tasks = iter(tasks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_pin_blas) as pool:
        pending = deque(pool.submit(fn, task) for task in islice(tasks, 2 * workers))
        while pending:
            result = pending.popleft().result()
            for task in islice(tasks, 1):
                pending.append(pool.submit(fn, task))
            yield result


def neurons_per_task(rf: int, neurons: int, workers: int) -> int:
    """Neurons per worker task: a multiple of the store's chunk, ~0.1 s of work or more."""
    chunk = neurons_per_chunk(rf)
    by_cost = max(1, 40_000 // (rf * rf))  # 4 fits on ~40k pixel-signals is ~0.1 s
    by_balance = max(1, -(-neurons // (4 * workers)))  # >= 4 tasks per worker
    per_task = max(1, min(by_cost, by_balance))
    return -(-per_task // chunk) * chunk


def write_ica_store(
    out_path: str | Path,
    patches_path: str | Path,
    *,
    n_components: int,
    max_iter: int,
    tol: float,
    seed: int,
    workers: int = 1,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Compute every neuron's ICs from a patch store and write the ICA store.

    Parameters
    ----------
    out_path
        Store to create (normally a temporary path of :func:`~neurofacets.store.atomic_output`).
    patches_path
        ``patches/{layer}.zarr``.
    n_components, max_iter, tol, seed
        FastICA settings (config ``visualize.*``).
    workers
        Worker processes; neurons are spread over them in blocks, and the parent writes
        the blocks in neuron order (the result does not depend on ``workers``). Workers
        are *spawned* (re-importing the main script), so a script that calls this with
        ``workers > 1`` must do so under ``if __name__ == "__main__":``.
    attrs
        Root attributes (provenance).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if max_iter < 1 or tol <= 0:
        raise ValueError(f"max_iter must be >= 1 and tol > 0, got {max_iter}, {tol}")
    source = zarr.open_group(str(patches_path), mode="r")
    patch_array = source["patches"]
    neurons, k, rf = patch_array.shape[:3]
    n_counted = np.asarray(source["n_counted"][:], dtype=np.int64)
    settings = dict(n_components=n_components, max_iter=max_iter, tol=tol, seed=seed)

    root = zarr.open_group(str(out_path), mode="w", zarr_format=3)
    per_chunk = neurons_per_chunk(rf)
    shapes = {
        "gray": ((n_components, rf, rf), "float32", np.nan),
        "rgb": ((n_components, rf, rf, 3), "float32", np.nan),
        "uint8": ((n_components, rf, rf, 3), "uint8", 0),
        "explained_variance": ((len(FITS), n_components), "float32", np.nan),
        "n_iter": ((len(FITS),), "int32", 0),
        "converged": ((len(FITS),), "bool", False),
        "status": ((len(FITS),), "int8", -1),
    }
    arrays = {
        name: root.create_array(
            name,
            shape=(neurons, *shape),
            chunks=(per_chunk, *shape),
            dtype=dtype,
            fill_value=fill,
            compressors=FLOAT_COMPRESSOR if dtype == "float32" else UINT8_COMPRESSOR,
            config=WRITE_EVERY_CHUNK,
        )
        for name, (shape, dtype, fill) in shapes.items()
    }
    root.create_array("n_counted", shape=(neurons,), chunks=(max(1, neurons),), dtype="int32")[:] = n_counted
    root.attrs.update(
        {
            **(attrs or {}),
            "layer": source.attrs.get("layer"),
            "rf": int(rf),
            "fits": list(FITS),
            "status_codes": {str(code): name for code, name in STATUS.items()},
            "luma_weights": list(LUMA_WEIGHTS),
            "n_components": n_components,
            "max_iter": max_iter,
            "tol": tol,
            "seed": seed,
            "rank_rtol": RANK_RTOL,
            "whiten": "unit-variance",
            "whiten_solver": "eigh",
            "dtype": "float32",
        }
    )

    per_task = neurons_per_task(rf, neurons, workers)
    starts = range(0, neurons, per_task)

    def tasks() -> Iterator[_Task]:
        for start in starts:
            stop = min(start + per_task, neurons)
            width = int(n_counted[start:stop].max(initial=0))  # read only the counted ranks
            block = patch_array[start:stop, :width]
            yield _Task(start, block, n_counted[start:stop], settings)

    status_counts = np.zeros((len(STATUS), len(FITS)), dtype=np.int64)
    with tqdm(total=neurons, desc=f"ica {source.attrs.get('layer', '')}", unit="neuron", mininterval=5) as bar:
        for start, block in _ordered_map(_run_task, tasks(), workers):
            stop = start + len(block["status"])
            for name, values in block.items():
                arrays[name][start:stop] = values
            for code in STATUS:
                status_counts[code] += (block["status"] == code).sum(axis=0)
            bar.update(stop - start)
    for code, name in STATUS.items():
        if status_counts[code].any():
            logger.info("%s: %s", name, dict(zip(FITS, status_counts[code].tolist())))


def build_ica(
    patches_path: str | Path,
    out_path: str | Path,
    *,
    n_components: int,
    max_iter: int,
    tol: float,
    seed: int,
    workers: int = 1,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Workflow entry point: ``patches/{layer}.zarr`` -> ``ica/{layer}.zarr`` (atomically).

    Provenance: the run's config digest and the dataset digest carried by the patch store.
    """
    dataset_digest = zarr.open_group(str(patches_path), mode="r").attrs.get("dataset_digest")
    attrs = provenance_attrs(config, dataset_digest=dataset_digest)
    with atomic_output(out_path) as tmp:
        write_ica_store(
            tmp, patches_path,
            n_components=n_components, max_iter=max_iter, tol=tol, seed=seed, workers=workers, attrs=attrs,
        )
    logger.info("wrote %s", out_path)


def read_neuron_ica(store: str | Path | zarr.Group, neuron: int) -> dict[str, Any]:
    """One neuron's ICs and fit record from ``ica/{layer}.zarr``.

    Returns a dict with ``gray``, ``rgb``, ``uint8``, ``explained_variance`` (arrays) and
    ``fits``: ``{fit name: {"n_iter", "converged", "status" (name)}}``.
    """
    root = store if isinstance(store, zarr.Group) else zarr.open_group(str(store), mode="r")
    out: dict[str, Any] = {name: root[name][neuron] for name in ("gray", "rgb", "uint8", "explained_variance")}
    codes = {int(c): name for c, name in root.attrs["status_codes"].items()}
    n_iter, converged, status = root["n_iter"][neuron], root["converged"][neuron], root["status"][neuron]
    out["fits"] = {
        fit: {"n_iter": int(n_iter[i]), "converged": bool(converged[i]), "status": codes[int(status[i])]}
        for i, fit in enumerate(root.attrs["fits"])
    }
    return out
