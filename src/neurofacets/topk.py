"""Top-k images per neuron with an exact tie rule.

For every neuron (column of a layer's images x channels activation matrix) the k images
with the highest activation are selected, ordered by activation descending and, among
equal activations, by the image's content key ascending (the first 8 bytes of the SHA-256
of its file, `neurofacets.images.content_key`), then image id (docs/methods.md). The
tie rule thus depends on the pictures alone: image ids follow the classes, and ties broken
by id would fill a saturated neuron's top k with the alphabetically first class. Selection is partition-based
(linear in the number of images) and runs over blocks of channels, so besides the input
matrix only one (images x block) working copy is held at a time.

Store ``topk/{layer}.zarr`` (an xarray Dataset, see [`write_topk`][]):

- ``image_id`` int64, ``value`` float32, ``argmax`` int32, ``content_key`` uint64: (neuron, rank),
  rank 0 = highest;
- ``n_counted`` int32 (neuron): how many of the k images have activation > 0 (the images
  that count in CoF);
- attrs: ``layer``, ``k`` (= min(top_k, n_images)), ``top_k`` (requested), ``n_images``,
  ``height``, ``width`` (feature-map size, to decode ``argmax``), ``tie_rule``, provenance.

Shard candidates, so the selection does not need every image in memory: each extraction
job also keeps its shard's top ``k`` images per neuron ([`write_shard_top_k`][], group
``{layer}/topk`` of the shard store: ``image_id``, ``value``, ``argmax``, ``content_key``,
(neuron, rank), same tie rule). Under a strict total order (activation descending, then
content key, then image id ascending; ids are unique across shards) the top k of all images are the top k of the
union of every shard's top k, so [`merge_top_k`][] reads shards x k x channels, whatever
the number of images, and gives exactly the brute-force selection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from .logs import timed
from .pathlike import PathLike
from .store import CHECKSUMMED_COMPRESSORS, WRITE_EVERY_CHUNK, open_shard, read_rows, write_xarray_store

logger = logging.getLogger(__name__)

TIE_RULE = ("activation descending, then content_key ascending (first 8 bytes of the SHA-256 of "
            "the image file), then image_id ascending")
CHANNEL_BLOCK = 32  # channels selected together: the working copies are (images x 32)
SHARD_TOPK_GROUP = "topk"  # per layer group of a shard store: that shard's candidates


@dataclass(frozen=True)
class TopK:
    """Top-k images of every neuron of one layer.

    Attributes
    ----------
    layer
        Layer name.
    image_id, value, argmax
        (neurons, k) arrays; row n holds neuron n's top images, best first.
    n_counted
        (neurons,) number of top-k images with activation > 0.
    height, width
        Feature-map size of the layer (``argmax = row * width + col``).
    n_images
        Number of images the selection was made from.
    content_key
        (neurons, k) uint64 tie key of each entry's image; ``None`` (data without files)
        stands for the image ids themselves, so that ties fall to the lower id.
    """

    layer: str
    image_id: np.ndarray
    value: np.ndarray
    argmax: np.ndarray
    n_counted: np.ndarray
    height: int
    width: int
    n_images: int
    content_key: np.ndarray | None = None

    def __post_init__(self) -> None:
        key = self.image_id if self.content_key is None else self.content_key
        object.__setattr__(self, "content_key", np.asarray(key).astype(np.uint64, copy=False))

    @property
    def k(self) -> int:
        return self.image_id.shape[1]

    @property
    def n_neurons(self) -> int:
        return self.image_id.shape[0]

    @property
    def counted(self) -> np.ndarray:
        """(neurons, k) bool: which top-k entries count in CoF (activation > 0)."""
        return self.value > 0


def top_k_indices(values: np.ndarray, k: int, block: int = CHANNEL_BLOCK,
                  row_order: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the k largest entries of every column, with ties to the earlier row.

    Parameters
    ----------
    values
        (images, channels) activations, rows in ascending image-id order, no NaN.
    k
        Number of rows to select per column, 1 <= k <= images.
    block
        Channels processed together (bounds the working memory to images x block).
    row_order
        A permutation of the rows giving the order in which ties are broken (a row earlier
        in it wins); default: the rows' own order.

    Returns
    -------
    np.ndarray
        int64 (channels, k): for column c, the selected row indices sorted by value
        descending, then by position in ``row_order``.
    """
    if values.ndim != 2:
        raise ValueError(f"values must be 2-d (images, channels), got shape {values.shape}")
    n_images, n_channels = values.shape
    if not 1 <= k <= n_images:
        raise ValueError(f"k must be in [1, {n_images}] (the number of images), got {k}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if row_order is not None:
        row_order = np.asarray(row_order, dtype=np.int64)
        if row_order.shape != (n_images,) or np.any(np.bincount(row_order, minlength=n_images) != 1):
            raise ValueError(f"row_order must be a permutation of the {n_images} rows")
    out = np.empty((n_channels, k), dtype=np.int64)
    for start in range(0, n_channels, block):
        cols = slice(start, min(start + block, n_channels))
        # Contiguous (block, images) copy, rows in tie order: each neuron's activations along the fast axis.
        x = np.ascontiguousarray((values[:, cols] if row_order is None else values[row_order, cols]).T)
        if np.isnan(x).any():
            raise ValueError(f"NaN activations in channels {cols.start}..{cols.stop - 1}")
        out[cols] = _select_block(x, k)
    return out if row_order is None else row_order[out]


def _select_block(x: np.ndarray, k: int) -> np.ndarray:
    """Top-k row indices of each row of ``x`` (neurons, images), exact tie rule."""
    n_rows, n_images = x.shape
    # The k-th largest value of each neuron: everything above it is in, and of the values
    # equal to it the lowest indices fill the remaining places (that is the tie rule;
    # argpartition alone would pick arbitrary members of a tie at the boundary).
    kth = np.partition(x, n_images - k, axis=1)[:, n_images - k, None]
    above = x > kth
    at = x == kth
    places_left = k - above.sum(axis=1, keepdims=True)
    chosen = above | (at & (np.cumsum(at, axis=1, dtype=np.int32) <= places_left))
    rows, idx = np.nonzero(chosen)  # row-major: ascending index within each neuron
    idx = idx.reshape(n_rows, k)
    vals = np.take_along_axis(x, idx, axis=1)
    # Stable sort on -value keeps the ascending index order inside ties.
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def select_top_k(
    layer: str,
    image_id: np.ndarray,
    values: np.ndarray,
    argmax: np.ndarray,
    top_k: int,
    height: int,
    width: int,
    content_key: np.ndarray | None = None,
) -> TopK:
    """Select every neuron's top-k images of one layer (the tie rule of `TIE_RULE`).

    Parameters
    ----------
    layer
        Layer name (recorded).
    image_id
        int (images,) strictly increasing (as `neurofacets.store.read_layer` returns).
    values, argmax
        (images, channels) spatial max activation and its flat position.
    top_k
        Requested k; ``min(top_k, images)`` images are selected.
    height, width
        Feature-map size of the layer.
    content_key
        uint64 (images,) tie key of each image (`neurofacets.images.content_key`);
        ``None``: the image ids stand in (data without files).
    """
    image_id = np.asarray(image_id)
    content_key = image_id if content_key is None else np.asarray(content_key)
    if content_key.shape != image_id.shape:
        raise ValueError(f"content_key has shape {content_key.shape}, image_id {image_id.shape}")
    content_key = content_key.astype(np.uint64, copy=False)
    if image_id.ndim != 1 or len(image_id) != values.shape[0]:
        raise ValueError(f"image_id has shape {image_id.shape}, values {values.shape}")
    if values.shape != argmax.shape:
        raise ValueError(f"values {values.shape} and argmax {argmax.shape} differ in shape")
    if len(image_id) == 0:
        raise ValueError(f"layer {layer!r}: no images")
    if np.any(np.diff(image_id) <= 0):
        # The tie rule relies on row order == image-id order.
        raise ValueError("image_id must be strictly increasing")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    k = min(top_k, len(image_id))
    if k < top_k:
        logger.warning("layer %s: only %d images, k = %d instead of top_k = %d", layer, k, k, top_k)
    idx = top_k_indices(values, k, row_order=np.lexsort((image_id, content_key)))
    channel = np.arange(values.shape[1])[:, None]
    value = values[idx, channel].astype(np.float32, copy=False)
    return TopK(
        layer=layer,
        image_id=image_id[idx].astype(np.int64, copy=False),
        value=value,
        argmax=argmax[idx, channel].astype(np.int32, copy=False),
        n_counted=(value > 0).sum(axis=1).astype(np.int32),
        height=int(height),
        width=int(width),
        n_images=len(image_id),
        content_key=content_key[idx],
    )


def topk_dataset(topk: TopK, top_k: int, attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The xarray Dataset written to ``topk/{layer}.zarr``."""
    dims = ("neuron", "rank")
    coords = {"neuron": np.arange(topk.n_neurons), "rank": np.arange(topk.k)}
    ds = xr.Dataset(
        {
            "image_id": (dims, topk.image_id),
            "value": (dims, topk.value),
            "argmax": (dims, topk.argmax),
            "content_key": (dims, topk.content_key),
            "n_counted": (("neuron",), topk.n_counted),
        },
        coords=coords,
    )
    ds.attrs.update(
        {
            **(attrs or {}),
            "layer": topk.layer,
            "k": topk.k,
            "top_k": int(top_k),
            "k_rule": "k = min(top_k, n_images)",
            "n_images": topk.n_images,
            "height": topk.height,
            "width": topk.width,
            "tie_rule": TIE_RULE,
            "counted_rule": "an image counts in CoF when its activation is > 0",
        }
    )
    return ds


def write_topk(path: PathLike, topk: TopK, top_k: int, attrs: Mapping[str, Any] | None = None) -> None:
    """Write ``topk`` atomically as a zarr v3 store (see module docstring)."""
    write_xarray_store(path, topk_dataset(topk, top_k, attrs))


@timed("read")
def read_topk(path: PathLike) -> TopK:
    """Read a ``topk/{layer}.zarr`` store written by [`write_topk`][]."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"top-k store {path} does not exist")
    with xr.open_zarr(path, consolidated=False) as ds:
        return TopK(
            layer=str(ds.attrs["layer"]),
            image_id=ds["image_id"].values,
            value=ds["value"].values,
            argmax=ds["argmax"].values,
            n_counted=ds["n_counted"].values,
            height=int(ds.attrs["height"]),
            width=int(ds.attrs["width"]),
            n_images=int(ds.attrs["n_images"]),
            content_key=ds["content_key"].values,
        )


def _empty_top_k(layer: str, channels: int, height: int, width: int) -> TopK:
    shape = (channels, 0)
    return TopK(layer, np.empty(shape, np.int64), np.empty(shape, np.float32),
                np.empty(shape, np.int32), np.zeros(channels, np.int32), height, width, 0,
                np.empty(shape, np.uint64))


def merge_top_k(parts: Sequence[TopK], top_k: int, block: int = CHANNEL_BLOCK) -> TopK:
    """Every neuron's top-k images over several shards, from each shard's own top k.

    Exact: the result equals [`select_top_k`][] on all the shards' images together,
    provided each part holds its shard's top ``min(top_k, part.n_images)`` images (checked).

    Parameters
    ----------
    parts
        One [`TopK`][] per shard (e.g. [`read_shard_top_k`][]), same layer, channels
        and map size; image ids unique across shards.
    top_k
        Requested k; ``min(top_k, total images)`` are kept.
    block
        Channels merged together (bounds the sort's working memory).
    """
    if not parts:
        raise ValueError("no shard candidates to merge")
    first = parts[0]
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    for part in parts:
        if (part.layer, part.n_neurons, part.height, part.width) != (
                first.layer, first.n_neurons, first.height, first.width):
            raise ValueError(
                f"shard candidates disagree: layer {part.layer!r} with {part.n_neurons} neurons "
                f"of {part.height}x{part.width}, vs {first.layer!r} with {first.n_neurons} of "
                f"{first.height}x{first.width}"
            )
        if part.k < min(top_k, part.n_images):
            raise ValueError(
                f"layer {part.layer!r}: a shard keeps its top {part.k} of {part.n_images} images, "
                f"fewer than top_k = {top_k}: the merge would not be exact"
            )
    n_images = sum(part.n_images for part in parts)
    if n_images == 0:
        raise ValueError(f"layer {first.layer!r}: no images")
    k = min(top_k, n_images)
    if k < top_k:
        logger.warning("layer %s: only %d images, k = %d instead of top_k = %d",
                       first.layer, n_images, k, top_k)
    image_id = np.concatenate([part.image_id for part in parts], axis=1)
    value = np.concatenate([part.value for part in parts], axis=1)
    argmax = np.concatenate([part.argmax for part in parts], axis=1)
    content_key = np.concatenate([part.content_key for part in parts], axis=1)
    if np.isnan(value).any():
        raise ValueError(f"layer {first.layer!r}: NaN among the shard candidates")
    order = np.empty((first.n_neurons, k), dtype=np.int64)
    for start in range(0, first.n_neurons, block):
        rows = slice(start, min(start + block, first.n_neurons))
        # lexsort: the last key is the primary one (value descending), then content key, then image id
        order[rows] = np.lexsort((image_id[rows], content_key[rows], -value[rows]), axis=1)[:, :k]
    merged_ids = np.take_along_axis(image_id, order, axis=1)
    if np.any(np.diff(np.sort(merged_ids, axis=1), axis=1) == 0):
        raise ValueError(f"layer {first.layer!r}: an image id appears in more than one shard")
    merged_value = np.take_along_axis(value, order, axis=1)
    return TopK(
        layer=first.layer,
        image_id=merged_ids,
        value=merged_value,
        argmax=np.take_along_axis(argmax, order, axis=1),
        n_counted=(merged_value > 0).sum(axis=1).astype(np.int32),
        height=first.height,
        width=first.width,
        n_images=n_images,
        content_key=np.take_along_axis(content_key, order, axis=1),
    )


def write_shard_top_k(root: zarr.Group, k: int, n_rows: int | None = None) -> None:
    """Add each layer's top-k candidates to an activation shard being written.

    For every layer of ``root.attrs["layers"]``, the top ``min(k, rows)`` images of each
    neuron among the shard's rows ([`select_top_k`][], the tie rule of the whole run)
    go to the group ``{layer}/topk``: ``image_id`` int64, ``value`` float32, ``argmax``
    int32, ``content_key`` uint64, each (neurons, k). One layer's rows are read back at a time.

    Parameters
    ----------
    root
        The shard's root group, open for writing, its rows flushed.
    k
        Candidates kept per neuron (``extraction.shard_top_k``), >= 1.
    n_rows
        Rows written so far (before the arrays are trimmed); default: all rows.
    """
    if k < 1:
        raise ValueError(f"shard top-k: k must be >= 1, got {k}")
    n = root["image_id"].shape[0] if n_rows is None else int(n_rows)
    image_id = root["image_id"][:n]
    content_key = root["content_key"][:n]
    for layer in root.attrs["layers"]:
        group = root[layer]
        height, width = int(group.attrs["height"]), int(group.attrs["width"])
        if n:
            topk = select_top_k(layer, image_id, group["max"][:n], group["argmax"][:n], min(k, n),
                                height, width, content_key)
        else:
            topk = _empty_top_k(layer, int(group.attrs["channels"]), height, width)
        out = group.create_group(SHARD_TOPK_GROUP, overwrite=True)
        out.attrs.update({"k": topk.k, "top_k": int(k), "n_images": n, "tie_rule": TIE_RULE})
        for name in ("image_id", "value", "argmax", "content_key"):
            data = getattr(topk, name)
            # checksummed and every chunk written, as the shard's activations: a damaged or
            # missing chunk is an error when read, never a neuron that looks dead
            out.create_array(name, shape=data.shape, dtype=data.dtype, chunks=(data.shape[0], max(1, data.shape[1])),
                             compressors=CHECKSUMMED_COMPRESSORS, config=WRITE_EVERY_CHUNK)[...] = data
    root.attrs["shard_top_k"] = int(k)


@timed("read")
def read_shard_top_k(path: PathLike, layer: str) -> TopK | None:
    """One layer's candidates from a complete activation shard; None where it has none.

    Raises
    ------
    StoreIntegrityError
        When a chunk of the candidates is missing or fails its checksum.
    """
    root = open_shard(path)
    if layer not in root:
        raise KeyError(f"layer {layer!r} not in {path}; it has {root.attrs.get('layers')}")
    group = root[layer]
    if SHARD_TOPK_GROUP not in group:
        return None
    cand = group[SHARD_TOPK_GROUP]

    def read(name: str) -> np.ndarray:
        array = cand[name]
        return array[...] if array.size == 0 else read_rows(path, array)

    value = read("value")
    return TopK(
        layer=layer,
        image_id=read("image_id"),
        value=value,
        argmax=read("argmax"),
        n_counted=(value > 0).sum(axis=1).astype(np.int32),
        height=int(group.attrs["height"]),
        width=int(group.attrs["width"]),
        n_images=int(cand.attrs["n_images"]),
        content_key=read("content_key"),
    )
