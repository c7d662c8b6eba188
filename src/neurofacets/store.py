"""On-disk stores: atomic outputs and the activation shard format.

Activation shard ``activations/shard-{shard}.zarr`` (zarr v3), one per extraction job:

- root array ``image_id`` int64 (images,), ascending; ``content_key`` uint64 (images,), each image's tie key;
- one group per layer ``{layer}`` with ``max`` float32 (images, channels), the spatial
  maximum of the post-ReLU map, and ``argmax`` int32 (images, channels), the flat
  row-major index of that maximum; group attributes ``height``, ``width``, ``channels``;
- root attributes: provenance (see `neurofacets.provenance`), ``layers`` (names in
  network order), ``complete`` (True once every image is written).

Every chunk is zstd-compressed with the zstd frame's content checksum and every chunk is
written (even one that equals the fill value), so reading detects what the disk did: a
damaged chunk fails its checksum and a missing chunk of a complete store is noticed, each
as a `StoreIntegrityError` naming the store, the array and the chunk, instead of
wrong numbers or NaN fill.

Every output directory or file is written under a temporary sibling name and renamed
into place only when complete, so a killed job never leaves something that looks done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from .logs import timed
from .pathlike import PathLike

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

IMAGE_CHUNK = 1024  # images per chunk: a chunk of 512 channels is 2 MiB of float32

#: zarr's default compression (zstd, default level) plus the content checksum of each frame.
CHECKSUMMED_COMPRESSORS = (ZstdCodec(level=0, checksum=True),)
#: Write every chunk, so that an absent chunk of a complete store means damage (and because
#: zarr's check whether a chunk is all fill value costs more than compressing it: about 45 ms
#: per 11 MB chunk of patches).
WRITE_EVERY_CHUNK = {"write_empty_chunks": True}


class StoreIntegrityError(RuntimeError):
    """A chunk of a store is damaged or missing; the message names store, array and chunk."""


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it to ``path`` when the block succeeds.

    Works for files and directories (zarr stores). On an exception the temporary is
    removed and ``path`` is left untouched; an existing ``path`` is replaced on success.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # one job writes a given output at a time: temporaries left by a killed job are stale
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        _remove(stale)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _remove(path)
    os.replace(tmp, path)


@timed("write")
def write_csv(path: PathLike, table: pd.DataFrame, **to_csv: Any) -> None:
    """Write ``table`` to ``path`` atomically (`atomic_output`), without its index by
    default; ``to_csv`` passes options to `pandas.DataFrame.to_csv` (e.g. ``index=True``,
    ``float_format``)."""
    with atomic_output(path) as tmp:
        table.to_csv(tmp, **{"index": False, **to_csv})


@timed("write")
def write_xarray_store(path: PathLike, ds: "xr.Dataset") -> None:
    """Write an xarray dataset atomically as a zarr v3 store (the small per-layer stores:
    top-k, CoF, similarity, class RDM). Read its variables by name: their order on disk
    follows the store listing, not ``ds``."""
    with atomic_output(path) as tmp:
        ds.to_zarr(tmp, zarr_format=3, mode="w", consolidated=False)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class ActivationShardWriter:
    """Write one activation shard incrementally, batch by batch.

    Images that could not be decoded are simply not written: the arrays are sized for
    every image of the shard and trimmed to the images written when the shard is closed.

    Parameters
    ----------
    path
        Where the store is created (normally the temporary path of `atomic_output`).
    n_images
        The number of images of the shard (an upper bound of the rows written).
    layers
        ``{layer: (channels, height, width)}`` in network order.
    attrs
        Provenance attributes for the root group.
    """

    def __init__(
        self,
        path: PathLike,
        n_images: int,
        layers: Mapping[str, tuple[int, int, int]],
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.capacity = n_images
        self.root = zarr.open_group(str(path), mode="w", zarr_format=3)
        self.chunk = max(1, min(IMAGE_CHUNK, n_images))
        checked = {"compressors": CHECKSUMMED_COMPRESSORS, "config": WRITE_EVERY_CHUNK}
        self.root.create_array("image_id", shape=(n_images,), chunks=(self.chunk,), dtype="int64",
                               fill_value=-1, **checked)
        # each image's tie key (images.content_key): a digest of its file, never its name or label
        self.root.create_array("content_key", shape=(n_images,), chunks=(self.chunk,), dtype="uint64",
                               fill_value=0, **checked)
        self.layers = dict(layers)
        for name, (channels, height, width) in self.layers.items():
            group = self.root.create_group(name)
            group.attrs.update({"channels": channels, "height": height, "width": width})
            shape, chunks = (n_images, channels), (self.chunk, channels)
            group.create_array("max", shape=shape, chunks=chunks, dtype="float32", fill_value=np.nan,
                               **checked)
            group.create_array("argmax", shape=shape, chunks=chunks, dtype="int32", fill_value=-1,
                               **checked)
        self.root.attrs.update({**(attrs or {}), "layers": list(self.layers), "complete": False})
        self.n_written = 0
        self._last_id = -1
        self._ids: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._buffer: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in self.layers}
        self._buffered = 0

    def write(self, image_ids: np.ndarray, values: Mapping[str, tuple[np.ndarray, np.ndarray]],
              content_keys: np.ndarray) -> None:
        """Append the rows of ``image_ids`` (increasing): ``{layer: (max, argmax)}`` and each image's
        ``content_keys`` (uint64, `neurofacets.images.content_key`).

        Rows are buffered and flushed a whole chunk at a time so each chunk is encoded once.
        """
        ids = np.asarray(image_ids, dtype=np.int64)
        if len(ids) == 0:
            return
        if ids[0] <= self._last_id or np.any(np.diff(ids) <= 0):
            raise ValueError("image ids must be written in strictly increasing order")
        if self.n_written + self._buffered + len(ids) > self.capacity:
            raise ValueError(f"more rows than the {self.capacity} images of the shard")
        keys = np.asarray(content_keys, dtype=np.uint64)
        if keys.shape != ids.shape:
            raise ValueError(f"{len(keys)} content keys for {len(ids)} images")
        self._last_id = int(ids[-1])
        self._ids.append(ids)
        self._keys.append(keys)
        for name in self.layers:
            mx, am = values[name]
            self._buffer[name].append((np.asarray(mx, np.float32), np.asarray(am, np.int32)))
        self._buffered += len(ids)
        if self._buffered >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if not self._buffered:
            return
        sel = slice(self.n_written, self.n_written + self._buffered)
        self.root["image_id"][sel] = np.concatenate(self._ids)
        self.root["content_key"][sel] = np.concatenate(self._keys)
        self._ids.clear()
        self._keys.clear()
        for name, parts in self._buffer.items():
            group = self.root[name]
            group["max"][sel] = np.concatenate([p[0] for p in parts])
            group["argmax"][sel] = np.concatenate([p[1] for p in parts])
            parts.clear()
        self.n_written = sel.stop
        self._buffered = 0

    def close(self, **attrs: Any) -> None:
        """Flush, trim the arrays to the rows written and mark the shard complete."""
        self.flush()
        if self.n_written < self.capacity:
            self.root["image_id"].resize((self.n_written,))
            self.root["content_key"].resize((self.n_written,))
            for name in self.layers:
                for key in ("max", "argmax"):
                    arr = self.root[name][key]
                    arr.resize((self.n_written, arr.shape[1]))
        self.root.attrs.update({**attrs, "n_images": self.n_written, "complete": True})


def write_activation_shard(
    path: PathLike,
    image_ids: Sequence[int] | np.ndarray,
    layers: Mapping[str, tuple[np.ndarray, np.ndarray, tuple[int, int]]],
    attrs: Mapping[str, Any] | None = None,
    content_keys: Sequence[int] | np.ndarray | None = None,
) -> None:
    """Write a whole shard at once: ``{layer: (max, argmax, (height, width))}`` (for tests).

    ``content_keys``: each image's tie key; ``None`` uses the image ids (fabricated data has no files).
    """
    shapes = {k: (v[0].shape[1], *v[2]) for k, v in layers.items()}
    ids = np.asarray(image_ids)
    with atomic_output(path) as tmp:
        writer = ActivationShardWriter(tmp, len(image_ids), shapes, attrs)
        writer.write(ids, {k: (v[0], v[1]) for k, v in layers.items()}, ids if content_keys is None else content_keys)
        writer.close()


@dataclass(frozen=True)
class LayerActivations:
    """One layer's activations over all images, sorted by image id."""

    layer: str
    image_id: np.ndarray  # int64 (images,)
    max: np.ndarray  # float32 (images, channels)
    argmax: np.ndarray  # int32 (images, channels)
    height: int
    width: int
    content_key: np.ndarray  # uint64 (images,): the tie key of each image

    @property
    def channels(self) -> int:
        return self.max.shape[1]


def open_shard(path: PathLike) -> zarr.Group:
    """Open an activation shard read-only, checking that it is complete."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"activation shard {path} does not exist")
    try:
        root = zarr.open_group(str(path), mode="r")
        complete = root.attrs.get("complete", False)
    except Exception as err:  # a damaged zarr.json: JSON, key or value errors
        raise StoreIntegrityError(f"activation shard {path}: unreadable metadata: {type(err).__name__}: {err}") from err
    if not complete:
        raise ValueError(f"activation shard {path} is incomplete (its job did not finish)")
    return root


def write_skipped_table(shard_paths: Sequence[PathLike], out_csv: PathLike) -> pd.DataFrame:
    """The ``skipped_images`` rule: images extraction could not decode, from every shard."""
    import pandas as pd

    rows = []
    for path in shard_paths:
        rows.extend(open_shard(path).attrs.get("skipped", []))
    table = pd.DataFrame(rows, columns=["image_id", "path", "reason"]).sort_values("image_id")
    write_csv(out_csv, table)
    return table


@timed("read")
def read_rows(store: PathLike, array: zarr.Array, start: int = 0, stop: int | None = None,
              out: np.ndarray | None = None, columns: slice | None = None) -> np.ndarray:
    """``array[start:stop]`` (along the first axis) of a complete store, chunk by chunk.

    Written into ``out`` (shape and dtype of the result) when given, and returned. ``columns``
    keeps only that slice of the second axis (each chunk is still decoded whole).

    Raises
    ------
    StoreIntegrityError
        When a chunk of the range is missing (none is, in a complete store written here) or
        does not decode (e.g. fails its checksum); the message names ``store``, the array
        and the chunk.
    """
    stop = array.shape[0] if stop is None else min(stop, array.shape[0])
    rows = array.chunks[0]
    trailing = tuple(array.shape[1:])
    if columns is not None:
        if array.ndim < 2:
            raise ValueError(f"{store}: array {array.path!r} has no second axis to slice")
        trailing = (len(range(*columns.indices(array.shape[1]))), *trailing[1:])
    shape = (max(stop - start, 0), *trailing)
    if out is None:
        out = np.empty(shape, dtype=array.dtype)
    elif out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, the rows {start}..{stop - 1} {shape}")
    for first in range(start - start % rows, stop, rows):
        lo, hi = max(first, start), min(first + rows, stop)
        index = (first // rows,) + (0,) * (array.ndim - 1)
        where = f"{store}: array {array.path!r}, chunk {index} (rows {lo}..{hi - 1})"
        if array.ndim > 1 and array.cdata_shape[1:] != (1,) * (array.ndim - 1):
            raise ValueError(f"{where}: read_rows needs arrays chunked along the first axis only")
        key = Path(store) / array.path / array.metadata.encode_chunk_key(index)
        if not key.is_file():
            raise StoreIntegrityError(f"{where} is missing ({key} is gone): the store is damaged")
        try:
            out[lo - start:hi - start] = array[lo:hi] if columns is None else array[lo:hi, columns]
        except Exception as err:
            raise StoreIntegrityError(f"{where} is damaged: {type(err).__name__}: {err}") from err
    return out


@timed("read")
def read_image_keys(shard_paths: Sequence[PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """``image_id`` and ``content_key`` of every image the shards computed, sorted by id (no activations read)."""
    parts = []
    for path in shard_paths:
        root = open_shard(path)
        parts.append((read_rows(path, root["image_id"]), read_rows(path, root["content_key"])))
    image_id = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
    content_key = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.uint64)
    order = np.argsort(image_id, kind="stable")
    image_id, content_key = image_id[order], content_key[order]
    if np.any(np.diff(image_id) == 0):
        raise ValueError(f"an image id appears in more than one of the shards {[str(p) for p in shard_paths]}")
    return image_id, content_key


@timed("read")
def read_layer(shard_paths: Sequence[PathLike], layer: str) -> LayerActivations:
    """Read one layer from every shard and return it sorted by image id.

    Memory: one (images x channels) float32 matrix and one int32 matrix of that layer,
    allocated once and filled chunk by chunk.
    """
    if not shard_paths:
        raise ValueError("no activation shards given")
    parts, shape = [], None
    for path in shard_paths:
        root = open_shard(path)
        if layer not in root:
            raise KeyError(f"layer {layer!r} not in {path}; it has {root.attrs.get('layers')}")
        group = root[layer]
        this_shape = (int(group.attrs["height"]), int(group.attrs["width"]))
        if shape is not None and this_shape != shape:
            raise ValueError(f"layer {layer!r} has map size {this_shape} in {path}, {shape} elsewhere")
        shape = this_shape
        parts.append((read_rows(path, root["image_id"]), group, path, read_rows(path, root["content_key"])))
    # shards are contiguous blocks of ids: in order of their first id they are already sorted
    parts.sort(key=lambda part: part[0][0] if len(part[0]) else -1)
    image_id = np.concatenate([part[0] for part in parts])
    content_key = np.concatenate([part[3] for part in parts])
    channels = int(parts[0][1].attrs["channels"])
    mx = np.empty((len(image_id), channels), dtype=np.float32)
    am = np.empty((len(image_id), channels), dtype=np.int32)
    offset = 0
    for ids, group, path, _ in parts:
        for start in range(0, len(ids), IMAGE_CHUNK):
            stop = min(start + IMAGE_CHUNK, len(ids))
            read_rows(path, group["max"], start, stop, out=mx[offset + start:offset + stop])
            read_rows(path, group["argmax"], start, stop, out=am[offset + start:offset + stop])
        offset += len(ids)
    if np.any(np.diff(image_id) <= 0):
        order = np.argsort(image_id, kind="stable")
        image_id, content_key = image_id[order], content_key[order]
        if np.any(np.diff(image_id) == 0):
            raise ValueError(f"an image id appears in more than one shard of layer {layer!r}")
        mx, am = mx[order], am[order]
    return LayerActivations(layer, image_id, mx, am, shape[0], shape[1], content_key)
