"""The ICA store ``ica/{layer}.zarr``: writing it from a patch store, reading pictures back.

The store keeps what defines each neuron's components, not the pictures: per fit the
**unmixing matrix** ``M`` (n_components x n_counted, float32) of
`neurofacets.ica.fit`, from which `IcaReader` recomputes the components
``M @ centred patches`` of the neuron's patches (read from the patch store the ICA was
computed from) in the modes ``gray``, ``rgb`` and ``uint8``. The same function computes
them at fit time, so a read gives exactly the fitted components. For the default run
that is 13 KB per neuron instead of 0.6-7 MB of float32 pictures.

Arrays (neurons in channel order; the second axis is the fit, in the order of the
attribute ``fits`` = ["gray", "red", "green", "blue"]):

- ``unmixing`` float32 (neurons, 4, n_components, k): columns ``>= n_counted`` are 0;
  rows of components a fit does not have are NaN;
- ``explained_variance`` float32 (neurons, 4, n_components), ``n_iter`` int32,
  ``converged`` bool, ``status`` int8 (codes in the attribute ``status_codes``),
  ``residual`` float32 (FastICA's fixed-point criterion at the answer), ``attempts``
  int8 (neurons, 4);
- ``n_counted`` int32 (neurons,): patches each neuron's fits used.

Attributes: provenance, ``layer``, ``rf``, ``side`` (of the components), ``k``,
``fits``, ``status_codes``, ``luma_weights``, the fit settings (``n_components``,
``solver``, ``max_iter``, ``tol``, ``seed``, ``restarts``, ``max_side``), ``rank_rtol``,
``patches_store`` (the patch store, relative to this store's folder) and
``patches_created`` (its creation time, to refuse a different patch store).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from threadpoolctl import threadpool_limits
from tqdm import tqdm
from zarr.codecs import BloscCodec, ZstdCodec

from ..patches import PatchReader
from ..pathlike import PathLike
from ..provenance import provenance_attrs
from ..store import WRITE_EVERY_CHUNK, atomic_output
from .fit import FITS, LUMA_WEIGHTS, RANK_RTOL, STATUS, FitSettings, block_fits, neuron_components, signal_buffer
from .pool import ordered_map

logger = logging.getLogger(__name__)

#: Unmixing matrices are small floats: byte shuffling + zstd.
FLOAT_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=4)
RECORD_COMPRESSOR = ZstdCodec(level=3)
#: Neurons per chunk of every array (13 KB of unmixing per neuron at k = 100).
NEURONS_PER_CHUNK = 16
#: CPU seconds a worker process takes to start (interpreter and imports: ~1.3 s measured).
WORKER_START_SECONDS = 1.5
#: Batched fits' CPU seconds per neuron and patch, and per patch and pixel (4 fits, default
#: settings; docs/benchmarks/visualisation.md): what decides the number of workers.
FIT_SECONDS_PER_PATCH, FIT_SECONDS_PER_PIXEL = 1e-4, 1.3e-7
#: Picture modes a reader returns.
MODES: tuple[str, ...] = ("gray", "rgb", "uint8")
#: Per-fit record arrays: dtype and fill value.
RECORDS: dict[str, tuple[str, Any]] = {
    "n_iter": ("int32", 0),
    "converged": ("bool", False),
    "status": ("int8", -1),
    "residual": ("float32", np.nan),
    "attempts": ("int8", 0),
}

# ----------------------------------------------------------------------------- writing

# Per worker process: the patch store and the settings, opened once by the pool's initializer.
_WORKER: dict[str, Any] = {}


def _open_worker(patches_path: str, settings: FitSettings) -> None:
    _WORKER["patches"] = PatchReader(patches_path)
    _WORKER["settings"] = settings


def _fit_block(bounds: tuple[int, int]) -> tuple[int, dict[str, np.ndarray]]:
    """Worker: the fits of neurons ``start..stop-1``, stacked per output array."""
    start, stop = bounds
    reader: PatchReader = _WORKER["patches"]
    settings: FitSettings = _WORKER["settings"]
    results = block_fits((reader.neuron(n) for n in range(start, stop)), settings)
    unmixing = np.zeros((stop - start, len(FITS), settings.n_components, reader.k), dtype=np.float32)
    for i, result in enumerate(results):
        unmixing[i, :, :, : result.unmixing.shape[2]] = result.unmixing
    block = {"unmixing": unmixing}
    for name in ("explained_variance", *RECORDS):
        block[name] = np.stack([getattr(r, name) for r in results])
    return start, block


def neurons_per_task(rf: int, neurons: int, workers: int) -> int:
    """Neurons per worker task: a multiple of the chunk, ~0.1 s of work or more, >= 4 tasks per worker."""
    by_cost = max(1, 40_000 // (rf * rf))
    by_balance = max(1, -(-neurons // (4 * workers)))
    per_task = max(1, min(by_cost, by_balance))
    return -(-per_task // NEURONS_PER_CHUNK) * NEURONS_PER_CHUNK


def write_ica_store(
    out_path: PathLike,
    patches_path: PathLike,
    settings: FitSettings,
    *,
    workers: int = 1,
    attrs: Mapping[str, Any] | None = None,
    final_path: PathLike | None = None,
) -> np.ndarray:
    """Fit every neuron of a patch store and write the ICA store.

    Parameters
    ----------
    out_path
        Store to create (normally a temporary path of `atomic_output`).
    patches_path
        ``patches/{layer}.zarr``.
    settings
        The fit settings (config ``visualize.*``).
    workers
        Worker processes; each opens the patch store and fits blocks of neurons, and the
        parent writes the blocks in neuron order (the result does not depend on
        ``workers``; `build_ica` starts fewer for quick layers, `useful_workers`).
        See `ordered_map` for the ``__main__`` guard this needs.
    attrs
        Root attributes (provenance).
    final_path
        Where the store will live (for the relative link to the patch store); default
        ``out_path``.

    Returns
    -------
    numpy.ndarray
        Fit counts per status and fit, int64 (len(STATUS), 4).
    """
    patches = PatchReader(patches_path)
    neurons, k, rf = patches.n_neurons, patches.k, patches.rf
    side = settings.side(rf)
    n_components = settings.n_components
    root = zarr.open_group(str(out_path), mode="w", zarr_format=3)
    chunk = min(NEURONS_PER_CHUNK, max(1, neurons))
    shapes = {
        "unmixing": ((len(FITS), n_components, k), "float32", 0.0),
        "explained_variance": ((len(FITS), n_components), "float32", np.nan),
        **{name: ((len(FITS),), dtype, fill) for name, (dtype, fill) in RECORDS.items()},
    }
    arrays = {
        name: root.create_array(
            name, shape=(neurons, *shape), chunks=(chunk, *shape), dtype=dtype, fill_value=fill,
            compressors=FLOAT_COMPRESSOR if dtype == "float32" else RECORD_COMPRESSOR, config=WRITE_EVERY_CHUNK,
        )
        for name, (shape, dtype, fill) in shapes.items()
    }
    root.create_array("n_counted", shape=(neurons,), chunks=(max(1, neurons),), dtype="int32")[:] = patches.n_counted
    link = os.path.relpath(Path(patches_path).resolve(), Path(final_path or out_path).resolve().parent)
    root.attrs.update(
        {
            **(attrs or {}),
            "layer": patches.attrs.get("layer"),
            "rf": int(rf),
            "side": int(side),
            "k": int(k),
            "fits": list(FITS),
            "status_codes": {str(code): name for code, name in STATUS.items()},
            "luma_weights": list(LUMA_WEIGHTS),
            **asdict(settings),
            "rank_rtol": RANK_RTOL,
            "patches_store": link,
            "patches_created": patches.attrs.get("created"),
        }
    )

    per_task = neurons_per_task(side, neurons, workers)
    tasks = [(lo, min(lo + per_task, neurons)) for lo in range(0, neurons, per_task)]
    counts = np.zeros((len(STATUS), len(FITS)), dtype=np.int64)
    with tqdm(total=neurons, desc=f"ica {patches.attrs.get('layer', '')}", unit="neuron", mininterval=5) as bar:
        for start, block in ordered_map(_fit_block, tasks, workers, _open_worker, (str(patches_path), settings)):
            stop = start + len(block["status"])
            for name, values in block.items():
                arrays[name][start:stop] = values
            for code in STATUS:
                counts[code] += (block["status"] == code).sum(axis=0)
            bar.update(stop - start)
    for code, name in STATUS.items():
        if counts[code].any():
            logger.info("%s: %s", name, dict(zip(FITS, counts[code].tolist())))
    return counts


def useful_workers(workers: int, neurons: int, side: int, k: int) -> int:
    """Worker processes worth starting for a layer: at most ``workers``, fewer when its fits are quick.

    A worker costs `WORKER_START_SECONDS` to start (an interpreter and the imports);
    the layer's fits take about ``neurons * k * (FIT_SECONDS_PER_PATCH + side**2 *
    FIT_SECONDS_PER_PIXEL)`` CPU seconds (batched, measured on the default run). The
    result does not depend on the number of workers, only the wall time does.
    """
    seconds = neurons * k * (FIT_SECONDS_PER_PATCH + side * side * FIT_SECONDS_PER_PIXEL)
    return max(1, min(workers, int(seconds // (2 * WORKER_START_SECONDS))))


def build_ica(
    patches_path: PathLike,
    out_path: PathLike,
    settings: FitSettings,
    *,
    workers: int = 1,
    config: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Workflow entry point: ``patches/{layer}.zarr`` -> ``ica/{layer}.zarr`` (atomically).

    Provenance: the run's config digest (from ``config`` or ``provenance``, its
    `run_provenance`) and the dataset digest carried by the patch store.
    Fits still not converged after their restarts are counted in the log (a warning).
    """
    dataset_digest = zarr.open_group(str(patches_path), mode="r").attrs.get("dataset_digest")
    attrs = provenance_attrs(config, run=provenance, dataset_digest=dataset_digest)
    patches = PatchReader(patches_path)
    workers = useful_workers(workers, patches.n_neurons, settings.side(patches.rf), patches.k)
    with atomic_output(out_path) as tmp:
        counts = write_ica_store(tmp, patches_path, settings, workers=workers, attrs=attrs, final_path=out_path)
    not_converged = int(counts[1].sum())
    if not_converged:
        logger.warning("%s: %d of %d fits did not converge (kept, marked not_converged)",
                       out_path, not_converged, int(counts.sum()))
    logger.info("wrote %s", out_path)


# ----------------------------------------------------------------------------- reading


def status_text(codes: np.ndarray, fits: Sequence[str], names: Mapping[int, str]) -> np.ndarray:
    """Per neuron, a short text of its fits' status: ``"ok"`` or what went wrong where.

    ``codes`` int (neurons, fits). A status shared by every fit is given alone
    (``"too_few_patches"``), otherwise with its fits (``"not_converged: gray/red"``).
    """
    codes = np.asarray(codes)
    if codes.ndim == 1:
        codes = codes[:, None]
    out = np.empty(len(codes), dtype=object)
    for i, row in enumerate(codes):
        labels = [names.get(int(c), f"status {int(c)}") for c in row]
        if len(set(labels)) == 1:
            out[i] = labels[0]
            continue
        by_label: dict[str, list[str]] = {}
        for fit, label in zip(fits, labels):
            if label != "ok":
                by_label.setdefault(label, []).append(fit)
        out[i] = "; ".join(f"{label}: {'/'.join(where)}" for label, where in by_label.items())
    return out


class IcaReader:
    """Read an ICA store: fit records at once, pictures computed from the patch store.

    Parameters
    ----------
    store
        ``ica/{layer}.zarr``.
    patches
        The patch store it was computed from; default: the store's ``patches_store``
        attribute, relative to the ICA store's folder. It is opened only when pictures
        are read, and refused when it is not the one the fits used.
    """

    def __init__(self, store: PathLike, patches: PathLike | None = None) -> None:
        self.path = Path(store)
        if not self.path.exists():
            raise FileNotFoundError(f"ICA store {self.path} does not exist")
        self.group = zarr.open_group(str(self.path), mode="r")
        missing = [name for name in ("unmixing", "status", "n_counted") if name not in self.group]
        if missing:
            raise ValueError(f"{self.path}: ICA store lacks the arrays {missing}")
        self.attrs = dict(self.group.attrs)
        self.fits = list(self.attrs.get("fits", FITS))
        self.status_names = {int(c): str(name) for c, name in dict(self.attrs.get("status_codes", {})).items()}
        self.status_codes = np.asarray(self.group["status"][:])
        self.n_counted = np.asarray(self.group["n_counted"][:], dtype=np.int64)
        self.side = int(self.attrs["side"])
        self._patches_path = Path(patches) if patches is not None else self.path.parent / self.attrs["patches_store"]
        self._patches: PatchReader | None = None
        self._signals: np.ndarray | None = None

    @property
    def n_neurons(self) -> int:
        return int(self.group["unmixing"].shape[0])

    @property
    def n_components(self) -> int:
        return int(self.group["unmixing"].shape[2])

    @property
    def status(self) -> np.ndarray:
        """Per neuron, the text of `status_text` (``"ok"``, ``"not_converged: red"``, ...)."""
        return status_text(self.status_codes, self.fits, self.status_names)

    def not_converged(self) -> np.ndarray:
        """bool (neurons,): some fit of the neuron did not converge."""
        return np.any(self.status_codes == 1, axis=1)

    def patches(self) -> PatchReader:
        """The patch store the fits used (opened once, checked against the fits)."""
        if self._patches is None:
            reader = PatchReader(self._patches_path)
            created = self.attrs.get("patches_created")
            if not np.array_equal(reader.n_counted, self.n_counted) or (
                created is not None and reader.attrs.get("created") != created
            ):
                raise ValueError(
                    f"{self.path}: the patch store {self._patches_path} is not the one these fits were "
                    "computed from (rebuild the ICA store)"
                )
            self._patches = reader
        return self._patches

    def neuron(self, neuron: int) -> dict[str, Any]:
        """One neuron's ICs and fit record.

        Returns a dict with ``gray``, ``rgb``, ``uint8`` (see
        `neuron_components`), ``explained_variance`` (4, c)
        and ``fits``: ``{fit: {"n_iter", "converged", "status", "residual", "attempts"}}``.
        """
        neuron = int(neuron)
        out: dict[str, Any] = self._pictures(neuron)
        out["explained_variance"] = np.asarray(self.group["explained_variance"][neuron])
        records = {name: self.group[name][neuron] for name in RECORDS if name in self.group}
        out["fits"] = {
            fit: {
                "n_iter": int(records["n_iter"][i]),
                "converged": bool(records["converged"][i]),
                "status": self.status_names.get(int(records["status"][i]), str(records["status"][i])),
                "residual": float(records["residual"][i]) if "residual" in records else float("nan"),
                "attempts": int(records["attempts"][i]) if "attempts" in records else 1,
            }
            for i, fit in enumerate(self.fits)
        }
        return out

    def _pictures(self, neuron: int) -> dict[str, np.ndarray]:
        patches = self.patches().neuron(neuron)
        unmixing = np.asarray(self.group["unmixing"][neuron])
        # one buffer for every neuron read (as the fits reuse one): a fresh one per neuron
        # costs more in page faults than the conversion (docs/benchmarks/visualisation.md)
        self._signals = signal_buffer(self._signals, len(patches), self.side)
        with threadpool_limits(limits=1):  # the fits' arithmetic, bit for bit
            return neuron_components(patches, unmixing, self.side, self._signals)

    def components(self, mode: str, neurons: slice | Sequence[int]) -> np.ndarray:
        """The ICs of a block of neurons in one mode (``gray``, ``rgb`` or ``uint8``), stacked."""
        if mode not in MODES:
            raise ValueError(f"ICA mode must be one of {MODES}, not {mode!r}")
        if isinstance(neurons, slice):
            neurons = range(*neurons.indices(self.n_neurons))
        shape = (self.n_components, self.side, self.side) + ((3,) if mode != "gray" else ())
        dtype = np.uint8 if mode == "uint8" else np.float32
        out = np.empty((len(neurons), *shape), dtype=dtype)
        for i, neuron in enumerate(neurons):
            out[i] = self._pictures(int(neuron))[mode]
        return out

    def iter_components(self, neurons: Sequence[int]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(neuron, {mode: ICs})`` for each neuron, every mode from one computation."""
        for neuron in neurons:
            yield int(neuron), self._pictures(int(neuron))


def read_neuron_ica(store: PathLike, neuron: int, patches: PathLike | None = None) -> dict[str, Any]:
    """One neuron's ICs and fit record from ``ica/{layer}.zarr`` (see `IcaReader.neuron`)."""
    return IcaReader(store, patches).neuron(neuron)
