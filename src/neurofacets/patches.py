"""Receptive-field patches of each neuron's top images.

For every neuron of a layer, each of its counted top-k images (activation > 0, see
``topk/{layer}.zarr``) is cut around the unit where the neuron's map reached its maximum:
the cut is exactly that unit's receptive field, an ``rf x rf`` box in the preprocessed
``image_size x image_size`` image (the pixels the network saw, before normalisation).
Where the box leaves the image it is filled with :data:`MEAN_GREY`.

Geometry (``model/layers.csv``): the unit at map position ``(r, c)`` (flat argmax
``r * width + c``) has its centre at input pixel ``(start + r * jump, start + c * jump)``;
its box has top-left corner ``(round(start + r * jump - (rf - 1) / 2), ...)``, where
``round`` rounds halves up (``floor(x + 0.5)``). For VGG16 every corner is an integer,
so the rounding never acts there.

Output store ``patches/{layer}.zarr`` (zarr v3, one group):

- ``patches`` uint8 (neurons, k, rf, rf, 3): RGB patches, rank order of the top-k list;
  one chunk per neuron (8 neurons when rf < 16) so a reader gets one neuron with one
  read. Slots at rank
  ``>= n_counted`` are not patches and hold zeros.
- ``n_counted`` int32 (neurons,): how many leading slots are patches.
- ``image_id`` int64 (neurons, k): the image of each slot, -1 where there is no patch.
- ``top_left`` int32 (neurons, k, 2): (row, column) of each box's top-left corner in the
  preprocessed image (may be negative: the box starts outside the image); 0 where no patch.
- root attributes: provenance, ``layer``, ``rf``, ``jump``, ``start``, ``height``,
  ``width``, ``image_size``, ``resize``, ``k``, ``fill_rgb``.

Every needed image is decoded once per layer job: the (neuron, rank) slots are grouped by
image, the images are decoded (in parallel threads, in ascending id order) and all their
patches are cut from the one decoded copy. Memory stays bounded: when the decoded images
of the layer would exceed ``cache_bytes``, images are processed in groups and the patches
go first to an uncompressed scratch file on disk (a numpy memmap beside the output), then
neuron by neuron into the store.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm
from zarr.codecs import ZstdCodec

from .images import MEAN_GREY_UINT8
from .geometry import LayerGeometry, read_layer_geometry
from .provenance import file_digest, provenance_attrs
from .store import atomic_output
from .topk import TopK, read_topk

logger = logging.getLogger("neurofacets.patches")

#: Fill colour outside the image: the ImageNet mean RGB (0.485, 0.456, 0.406) x 255
#: = (123.675, 116.28, 103.53), rounded to uint8. After the network's normalisation this
#: colour is (almost exactly) zero, i.e. what zero padding shows the network.
MEAN_GREY: tuple[int, int, int] = MEAN_GREY_UINT8

#: zstd level 1: half the CPU of zarr's default level 3 for ~4 % more bytes on photo patches
#: (conv5_3 of VGG16 is 5.9 GB of raw patches at k = 100).
PATCH_COMPRESSOR = ZstdCodec(level=1)

#: zarr's check whether a chunk is all fill value costs more than compressing it (about
#: 45 ms per 11 MB chunk); our chunks are rarely empty, so they are written unchecked.
WRITE_EVERY_CHUNK = {"write_empty_chunks": True}

#: Default memory for decoded images held at once (224 x 224 x 3 uint8 = 147 KiB each).
DEFAULT_CACHE_BYTES = 2 * 1024**3


def receptive_field_box(
    r: int | np.ndarray, c: int | np.ndarray, rf: int, jump: float, start: float
) -> tuple[Any, Any, Any, Any]:
    """Box of the receptive field of the unit at map position ``(r, c)``.

    Parameters
    ----------
    r, c
        Row and column of the unit in the layer's feature map (scalars or arrays).
    rf
        Receptive field size in input pixels.
    jump
        Distance in input pixels between neighbouring units.
    start
        Input-pixel coordinate of the centre of unit 0.

    Returns
    -------
    top, left, bottom, right
        Integer box, ``bottom``/``right`` exclusive (``bottom - top == rf``), in the
        coordinates of the preprocessed image; may reach outside it.
        ``top = floor(start + r * jump - (rf - 1) / 2 + 0.5)`` (round half up).
    """
    if int(rf) != rf or rf < 1:
        raise ValueError(f"rf must be a positive integer, got {rf}")
    if jump <= 0:
        raise ValueError(f"jump must be positive, got {jump}")
    half = (rf - 1) / 2
    top = np.floor(start + np.asarray(r) * jump - half + 0.5).astype(np.int64)
    left = np.floor(start + np.asarray(c) * jump - half + 0.5).astype(np.int64)
    if top.ndim == 0:
        top, left = int(top), int(left)
    return top, left, top + rf, left + rf


def cut_patch(
    image: np.ndarray, top: int, left: int, rf: int, fill: tuple[int, int, int] = MEAN_GREY
) -> np.ndarray:
    """Cut the ``rf x rf`` box with top-left ``(top, left)`` out of an RGB image.

    Parameters
    ----------
    image
        uint8 array (height, width, 3).
    top, left
        Box corner in image coordinates; the box may reach outside the image.
    rf
        Box size.
    fill
        RGB colour of the part of the box outside the image (default :data:`MEAN_GREY`).

    Returns
    -------
    numpy.ndarray
        uint8 (rf, rf, 3).
    """
    out = np.empty((rf, rf, 3), dtype=np.uint8)
    _cut_into(out, image, top, left, fill)
    return out


def _cut_into(out: np.ndarray, image: np.ndarray, top: int, left: int, fill: tuple[int, int, int]) -> None:
    """Write the box of size ``out.shape[:2]`` at (top, left) of ``image`` into ``out``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (height, width, 3), got {image.dtype} {image.shape}")
    rf = out.shape[0]
    height, width = image.shape[:2]
    r0, r1 = max(top, 0), min(top + rf, height)
    c0, c1 = max(left, 0), min(left + rf, width)
    if r0 >= r1 or c0 >= c1:
        raise ValueError(f"box at ({top}, {left}) of size {rf} does not overlap the {height}x{width} image")
    inner_rows, inner_cols = slice(r0 - top, r1 - top), slice(c0 - left, c1 - left)
    if r0 != top or c0 != left or r1 != top + rf or c1 != left + rf:
        # only the strips outside the image (assigning a colour to a whole box is slow)
        colour = np.asarray(fill, dtype=np.uint8)
        out[: inner_rows.start] = colour
        out[inner_rows.stop :] = colour
        out[inner_rows, : inner_cols.start] = colour
        out[inner_rows, inner_cols.stop :] = colour
    out[inner_rows, inner_cols] = image[r0:r1, c0:c1]


def patch_boxes(topk: TopK, geometry: LayerGeometry) -> np.ndarray:
    """Top-left corners (neurons, k, 2) of every top-k slot's receptive field (int64)."""
    argmax = topk.argmax
    cells = geometry.height * geometry.width
    used = np.arange(topk.k)[None, :] < topk.n_counted[:, None]
    if np.any(used & ((argmax < 0) | (argmax >= cells))):
        raise ValueError(f"argmax outside the {geometry.height}x{geometry.width} map of {geometry.layer}")
    r, c = np.divmod(np.where(used, argmax, 0), geometry.width)
    top, left, _, _ = receptive_field_box(r, c, geometry.rf, geometry.jump, geometry.start)
    return np.stack([top, left], axis=-1)


def neurons_per_chunk(rf: int) -> int:
    """Neurons per chunk of the patch store: one, unless a neuron's patches are tiny."""
    # A neuron of rf >= 16 is >= 75 KiB at k = 100: one chunk each. Tiny layers group a few
    # so a store does not become thousands of 1-KiB files.
    return 1 if rf >= 16 else 8


def write_patch_store(
    out_path: str | Path,
    topk: TopK,
    geometry: LayerGeometry,
    load_image: Callable[[int], np.ndarray],
    *,
    image_size: int,
    attrs: Mapping[str, Any] | None = None,
    threads: int = 1,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    fill: tuple[int, int, int] = MEAN_GREY,
) -> None:
    """Cut every neuron's counted top-k patches and write the patch store at ``out_path``.

    Parameters
    ----------
    out_path
        Store to create (normally the temporary path of :func:`~neurofacets.store.atomic_output`).
    topk
        The layer's top-k lists (:func:`neurofacets.topk.read_topk`); only the first
        ``n_counted`` entries of each neuron (activation > 0) become patches.
    geometry
        The layer's receptive-field geometry.
    load_image
        ``image_id -> uint8 (image_size, image_size, 3)``: the preprocessed image.
        Called once per distinct image the layer needs.
    image_size
        Side of the preprocessed image (checked against what ``load_image`` returns).
    attrs
        Root attributes (provenance).
    threads
        Threads decoding images in parallel.
    cache_bytes
        Most bytes of decoded images held at once; above it images are processed in
        groups through an on-disk scratch copy of the patches.
    fill
        Colour outside the image.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if topk.n_neurons != geometry.channels:
        raise ValueError(
            f"top-k store has {topk.n_neurons} neurons, layers.csv says {geometry.layer} has {geometry.channels}"
        )
    if (topk.height, topk.width) != (geometry.height, geometry.width):
        raise ValueError(
            f"top-k store has map size {topk.height}x{topk.width}, layers.csv says "
            f"{geometry.height}x{geometry.width} for {geometry.layer}"
        )
    rf, k, neurons = geometry.rf, topk.k, topk.n_neurons
    used = np.arange(k)[None, :] < topk.n_counted[:, None]
    if np.any(used & (topk.image_id < 0)):
        raise ValueError("a counted top-k slot has no image (image_id < 0)")
    boxes = patch_boxes(topk, geometry)
    # every box must overlap the image, else the unit lies outside it: wrong geometry
    far = (boxes >= image_size) | (boxes + rf <= 0)
    if np.any(used[..., None] & far):
        raise ValueError(f"a receptive field of {geometry.layer} lies outside the {image_size}px image")

    root = zarr.open_group(str(out_path), mode="w", zarr_format=3)
    per_chunk = neurons_per_chunk(rf)
    patches = root.create_array(
        "patches",
        shape=(neurons, k, rf, rf, 3),
        chunks=(per_chunk, k, rf, rf, 3),
        dtype="uint8",
        fill_value=0,
        compressors=PATCH_COMPRESSOR,
        config=WRITE_EVERY_CHUNK,
    )
    image_id = np.where(used, topk.image_id, -1).astype(np.int64)
    root.create_array("n_counted", shape=(neurons,), chunks=(neurons,), dtype="int32")[:] = topk.n_counted
    root.create_array("image_id", shape=(neurons, k), chunks=(neurons, k), dtype="int64")[:] = image_id
    top_left = np.where(used[..., None], boxes, 0).astype(np.int32)
    root.create_array("top_left", shape=(neurons, k, 2), chunks=(neurons, k, 2), dtype="int32")[:] = top_left
    root.attrs.update(
        {
            **(attrs or {}),
            "layer": geometry.layer,
            "rf": rf,
            "jump": geometry.jump,
            "start": geometry.start,
            "height": geometry.height,
            "width": geometry.width,
            "image_size": image_size,
            "k": k,
            "fill_rgb": list(fill),
        }
    )

    needed = np.unique(image_id[used])
    image_bytes = image_size * image_size * 3
    group_size = max(1, cache_bytes // image_bytes)
    logger.info(
        "%s: %d patches of %dpx from %d distinct images (%d neurons, k=%d)",
        geometry.layer, int(used.sum()), rf, len(needed), neurons, k,
    )

    def decode(ids: np.ndarray) -> dict[int, np.ndarray]:
        def one(i: int) -> np.ndarray:
            image = load_image(int(i))
            if image.shape != (image_size, image_size, 3) or image.dtype != np.uint8:
                raise ValueError(
                    f"image {i}: expected uint8 ({image_size}, {image_size}, 3), got {image.dtype} {image.shape}"
                )
            return image

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return dict(zip(ids.tolist(), pool.map(one, ids.tolist())))

    def cut_block(lo: int, hi: int, images: Mapping[int, np.ndarray], out: np.ndarray) -> None:
        """Cut neurons lo..hi-1 (all their patches whose image is in ``images``) into out."""
        for n in range(lo, hi):
            for rank in range(int(topk.n_counted[n])):
                image = images.get(int(image_id[n, rank]))
                if image is not None:
                    _cut_into(out[n - lo, rank], image, int(boxes[n, rank, 0]), int(boxes[n, rank, 1]), fill)

    blocks = [(lo, min(lo + per_chunk, neurons)) for lo in range(0, neurons, per_chunk)]
    if len(needed) <= group_size:
        images = decode(needed)

        def cut_and_write(bounds: tuple[int, int]) -> int:
            lo, hi = bounds
            block = np.zeros((hi - lo, k, rf, rf, 3), dtype=np.uint8)
            cut_block(lo, hi, images, block)
            patches[lo:hi] = block  # whole chunks: blocks never share one
            return hi - lo

        # threads overlap the copying and the compression (both release the GIL); each
        # block is its own chunk, so the result does not depend on the order of writes
        with ThreadPoolExecutor(max_workers=threads) as pool, tqdm(
            total=neurons, desc=f"patches {geometry.layer}", unit="neuron", mininterval=5
        ) as bar:
            for done in pool.map(cut_and_write, blocks):
                bar.update(done)
        return

    # Too many images to hold: decode them group by group (each image once) into an on-disk
    # scratch copy of the layer's patches, then copy that into the store chunk by chunk.
    groups = math.ceil(len(needed) / group_size)
    logger.info("%s: images exceed %d bytes; %d groups through a scratch file", geometry.layer, cache_bytes, groups)
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=".patches-scratch-") as scratch_dir:
        scratch = np.lib.format.open_memmap(
            Path(scratch_dir) / "patches.npy", mode="w+", dtype=np.uint8, shape=(neurons, k, rf, rf, 3)
        )
        for g in tqdm(range(groups), desc=f"patches {geometry.layer} (image groups)", unit="group"):
            images = decode(needed[g * group_size : (g + 1) * group_size])
            cut_block(0, neurons, images, scratch)
            del images
        for lo, hi in blocks:
            patches[lo:hi] = scratch[lo:hi]
        del scratch


def image_loader(images_csv: str | Path, image_size: int, resize: int) -> Callable[[int], np.ndarray]:
    """``image_id -> preprocessed uint8 image`` for the images of ``dataset/images.csv``.

    Uses :func:`neurofacets.images.preprocess_uint8`, i.e. exactly the resize and crop the
    network saw.
    """
    from .images import preprocess_uint8  # imported here: only the workflow path needs it

    table = pd.read_csv(images_csv, usecols=["image_id", "path"])
    paths = dict(zip(table["image_id"].astype(int), table["path"].astype(str)))

    def load(image_id: int) -> np.ndarray:
        try:
            path = paths[image_id]
        except KeyError:
            raise KeyError(f"image {image_id} is not in {images_csv}") from None
        return preprocess_uint8(path, image_size, resize)

    return load


def build_patches(
    topk_path: str | Path,
    layers_csv: str | Path,
    images_csv: str | Path,
    layer: str,
    out_path: str | Path,
    *,
    image_size: int,
    resize: int,
    threads: int = 1,
    config: Mapping[str, Any] | None = None,
    load_image: Callable[[int], np.ndarray] | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> None:
    """Workflow entry point: ``topk/{layer}.zarr`` -> ``patches/{layer}.zarr`` (atomically).

    Parameters
    ----------
    topk_path, layers_csv, images_csv
        Inputs: the layer's top-k store, the model's geometry table, the dataset table.
    layer
        Layer name.
    out_path
        The patch store to write.
    image_size, resize
        ``extraction.image_size`` and ``extraction.resize``: the preprocessing of extraction.
    threads
        Threads decoding images.
    config
        The run's configuration, for the provenance attributes.
    load_image
        Replaces the image loader (tests); default :func:`image_loader`.
    cache_bytes
        Memory for decoded images (see :func:`write_patch_store`).
    """
    geometry = read_layer_geometry(layers_csv, layer)
    topk = read_topk(topk_path)
    if load_image is None:
        load_image = image_loader(images_csv, image_size, resize)
    attrs = provenance_attrs(config, dataset_digest=file_digest(images_csv), resize=resize)
    with atomic_output(out_path) as tmp:
        write_patch_store(
            tmp, topk, geometry, load_image,
            image_size=image_size, attrs=attrs, threads=threads, cache_bytes=cache_bytes,
        )
    logger.info("wrote %s", out_path)


def read_neuron_patches(store: str | Path | zarr.Group, neuron: int) -> np.ndarray:
    """One neuron's counted patches, uint8 (n_counted, rf, rf, 3)."""
    root = store if isinstance(store, zarr.Group) else zarr.open_group(str(store), mode="r")
    n_counted = int(root["n_counted"][neuron])
    return root["patches"][neuron, :n_counted]
