"""Receptive-field patches of each neuron's top images.

For every neuron of a layer, each of its counted top-k images (activation > 0, see
``topk/{layer}.zarr``) is cut around the unit where the neuron's map reached its maximum:
the cut is exactly that unit's receptive field, an ``rf x rf`` box in the preprocessed
``image_size x image_size`` image (the pixels the network saw, before normalisation).
Where the box leaves the image it is filled with `MEAN_GREY`.

Geometry (``model/layers.csv``): the unit at map position ``(r, c)`` (flat argmax
``r * width + c``) has its centre at input pixel ``(start + r * jump, start + c * jump)``;
its box has top-left corner ``(round(start + r * jump - (rf - 1) / 2), ...)``, where
``round`` rounds halves up (``floor(x + 0.5)``). For VGG16 every corner is an integer,
so the rounding never acts there.

Output store ``patches/{layer}.zarr`` (zarr v3, one group) in one of two layouts
(attribute ``layout``), whichever holds fewer raw bytes; the patches read the same:

- ``layout: patches``: ``patches`` uint8 (neurons, k, rf, rf, 3): RGB patches, rank
  order of the top-k list; one chunk per neuron (8 neurons when rf < 16) so a reader
  gets one neuron with one read. Slots at rank ``>= n_counted`` hold zeros.
- ``layout: images``: the preprocessed images the patches are cut from, ``images`` uint8
  (distinct images, image_size, image_size, 3), one chunk per image, ascending
  ``image_id``, and ``image_index`` int32 (neurons, k): each slot's row in ``images``
  (-1 where no patch). Deep layers' patches are nearly whole images, and a neuron's
  top-k images recur across the layer's neurons: VGG16 conv5_3 at k = 100 is
  5.9 GB of raw patches, cut from at most 50,000 distinct images; the 288 images of the
  default run are 43 MB. [`PatchReader`][] cuts the patches when read (the same
  cutter, so they are byte-identical to the other layout's).

In both layouts:

- ``n_counted`` int32 (neurons,): how many leading slots are patches.
- ``image_id`` int64 (neurons, k): the image of each slot, -1 where there is no patch.
- ``top_left`` int32 (neurons, k, 2): (row, column) of each box's top-left corner in the
  preprocessed image (may be negative: the box starts outside the image); 0 where no patch.
- root attributes: provenance, ``layer``, ``rf``, ``jump``, ``start``, ``height``,
  ``width``, ``image_size``, ``resize``, ``k``, ``fill_rgb``.

Every needed image is decoded once per layer job: the (neuron, rank) slots are grouped by
image, the images are decoded (in parallel threads, in ascending id order) and all their
patches are cut from the one decoded copy (or, layout ``images``, the image is stored). Memory stays bounded: when the decoded images
of the layer would exceed ``cache_bytes``, images are processed in groups and the patches
go first to an uncompressed scratch file on disk (a numpy memmap beside the output), then
neuron by neuron into the store.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm
from zarr.codecs import ZstdCodec

from .geometry import LayerGeometry, read_layer_geometry
from .images import MEAN_GREY_UINT8
from .logs import timed
from .pathlike import PathLike
from .provenance import file_digest, provenance_attrs
from .store import WRITE_EVERY_CHUNK, atomic_output
from .topk import TopK, read_topk

logger = logging.getLogger(__name__)

#: Fill colour outside the image: the ImageNet mean RGB (0.485, 0.456, 0.406) x 255
#: = (123.675, 116.28, 103.53), rounded to uint8. After the network's normalisation this
#: colour is (almost exactly) zero, i.e. what zero padding shows the network.
MEAN_GREY: tuple[int, int, int] = MEAN_GREY_UINT8

#: zstd level 1: half the CPU of zarr's default level 3 for ~4 % more bytes on photo patches
#: (conv5_3 of VGG16 is 5.9 GB of raw patches at k = 100).
PATCH_COMPRESSOR = ZstdCodec(level=1)

#: Whole preprocessed images (layout ``images``), one per chunk: see docs/benchmarks.md for
#: the codecs measured on them.
IMAGE_COMPRESSOR = ZstdCodec(level=3)

#: Default memory for decoded images held at once (224 x 224 x 3 uint8 = 147 KiB each).
DEFAULT_CACHE_BYTES = 2 * 1024**3
#: Decoded stored images a [`PatchReader`][] keeps (layout ``images``).
READER_CACHE_BYTES = 512 * 1024**2
#: Store layouts (attribute ``layout``); ``auto`` picks the one of fewer raw bytes.
LAYOUTS = ("patches", "images")


def choose_layout(n_counted: np.ndarray, rf: int, distinct_images: int, image_size: int) -> str:
    """``images`` when the distinct images hold fewer raw bytes than the patches, else ``patches``."""
    patch_bytes = int(np.sum(n_counted, dtype=np.int64)) * rf * rf * 3
    image_bytes = distinct_images * image_size * image_size * 3
    return "images" if image_bytes < patch_bytes else "patches"


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
        RGB colour of the part of the box outside the image (default `MEAN_GREY`).

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
    out_path: PathLike,
    topk: TopK,
    geometry: LayerGeometry,
    load_image: Callable[[int], np.ndarray],
    *,
    image_size: int,
    attrs: Mapping[str, Any] | None = None,
    threads: int = 1,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    fill: tuple[int, int, int] = MEAN_GREY,
    layout: str = "auto",
) -> None:
    """Cut every neuron's counted top-k patches and write the patch store at ``out_path``.

    Parameters
    ----------
    out_path
        Store to create (normally the temporary path of `atomic_output`).
    topk
        The layer's top-k lists ([`neurofacets.topk.read_topk`][]); only the first
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
    layout
        ``patches``, ``images`` or ``auto`` (the one of fewer raw bytes, [`choose_layout`][]).
    """
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
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

    image_id = np.where(used, topk.image_id, -1).astype(np.int64)
    needed = np.unique(image_id[used])
    if layout == "auto":
        layout = choose_layout(topk.n_counted, rf, len(needed), image_size)
    root = zarr.open_group(str(out_path), mode="w", zarr_format=3)
    per_chunk = neurons_per_chunk(rf)
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
            "layout": layout,
        }
    )

    image_bytes = image_size * image_size * 3
    group_size = max(1, cache_bytes // image_bytes)
    logger.info(
        "%s: %d patches of %dpx from %d distinct images (%d neurons, k=%d), layout %s",
        geometry.layer, int(used.sum()), rf, len(needed), neurons, k, layout,
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

    if layout == "images":
        _write_images(root, needed, image_id, image_size, decode, group_size)
        return
    patches = root.create_array(
        "patches",
        shape=(neurons, k, rf, rf, 3),
        chunks=(per_chunk, k, rf, rf, 3),
        dtype="uint8",
        fill_value=0,
        compressors=PATCH_COMPRESSOR,
        config=WRITE_EVERY_CHUNK,
    )

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


def _write_images(
    root: zarr.Group,
    needed: np.ndarray,
    image_id: np.ndarray,
    image_size: int,
    decode: Callable[[np.ndarray], dict[int, np.ndarray]],
    group_size: int,
) -> None:
    """Layout ``images``: the distinct images (ascending id) and each slot's row among them."""
    images = root.create_array(
        "images",
        shape=(len(needed), image_size, image_size, 3),
        chunks=(1, image_size, image_size, 3),
        dtype="uint8",
        fill_value=0,
        compressors=IMAGE_COMPRESSOR,
        config=WRITE_EVERY_CHUNK,
    )
    index = np.where(image_id >= 0, np.searchsorted(needed, image_id), -1).astype(np.int32)
    root.create_array("image_index", shape=index.shape, chunks=index.shape, dtype="int32")[:] = index
    for lo in tqdm(range(0, len(needed), group_size), desc="images", unit="group", mininterval=5):
        ids = needed[lo : lo + group_size]
        decoded = decode(ids)
        images[lo : lo + len(ids)] = np.stack([decoded[int(i)] for i in ids])


def image_loader(images_csv: PathLike, image_size: int, resize: int | Sequence[int],
                 content_keys: Mapping[int, int] | None = None, interpolation: str = "bilinear",
                 crop_offset: str = "round") -> Callable[[int], np.ndarray]:
    """``image_id -> preprocessed uint8 image`` for the images of ``dataset/images.csv``.

    Uses `neurofacets.images.preprocess` with the run's recipe, i.e. exactly the resize
    and crop the network saw. With ``content_keys`` (``image_id -> content key`` recorded at extraction),
    a file whose content has changed since is an error, never a patch of another picture.
    """
    from .images import preprocess, read_image_bytes  # imported here: only the workflow path needs them

    table = pd.read_csv(images_csv, usecols=["image_id", "path"], dtype={"path": str})
    paths = dict(zip(table["image_id"].astype(int), table["path"]))

    def load(image_id: int) -> np.ndarray:
        try:
            path = paths[image_id]
        except KeyError:
            raise KeyError(f"image {image_id} is not in {images_csv}") from None
        done = preprocess(read_image_bytes(path), image_size, resize, interpolation=interpolation,
                          crop_offset=crop_offset)
        if content_keys is not None and done.content_key != content_keys[image_id]:
            raise ValueError(
                f"image {image_id} ({path}) has changed since the activations were extracted (its content "
                f"key differs): its patches would show another picture; rerun the workflow, which "
                f"re-extracts a changed dataset"
            )
        return done.pixels

    return load


def build_patches(
    topk_path: PathLike,
    layers_csv: PathLike,
    images_csv: PathLike,
    layer: str,
    out_path: PathLike,
    *,
    image_size: int,
    resize: int | Sequence[int],
    interpolation: str = "bilinear",
    crop_offset: str = "round",
    threads: int = 1,
    config: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    load_image: Callable[[int], np.ndarray] | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    layout: str = "auto",
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
    image_size, resize, interpolation, crop_offset
        ``extraction.image_size``, ``resize``, ``interpolation`` and ``crop_offset`` (resolved,
        `neurofacets.preprocessing`): the preprocessing of extraction.
    threads
        Threads decoding images.
    config, provenance
        The run's configuration, or its `run_provenance`, for the
        provenance attributes.
    load_image
        Replaces the image loader (tests); default [`image_loader`][].
    cache_bytes
        Memory for decoded images (see [`write_patch_store`][]).
    layout
        Store layout (see [`write_patch_store`][]).
    """
    geometry = read_layer_geometry(layers_csv, layer)
    topk = read_topk(topk_path)
    if load_image is None:
        used = np.arange(topk.k)[None, :] < topk.n_counted[:, None]
        keys = dict(zip(topk.image_id[used].tolist(), topk.content_key[used].tolist()))
        load_image = image_loader(images_csv, image_size, resize, keys, interpolation, crop_offset)
    attrs = provenance_attrs(config, run=provenance, dataset_digest=file_digest(images_csv), resize=resize)
    with atomic_output(out_path) as tmp:
        write_patch_store(
            tmp, topk, geometry, load_image,
            image_size=image_size, attrs=attrs, threads=threads, cache_bytes=cache_bytes, layout=layout,
        )
    logger.info("wrote %s", out_path)


class PatchReader:
    """Read a patch store of either layout: one neuron's patches or a block's top ones.

    Parameters
    ----------
    store
        ``patches/{layer}.zarr`` (path or open group).
    cache_bytes
        Layout ``images``: most bytes of decoded stored images kept between reads.
    """

    def __init__(self, store: PathLike | zarr.Group, cache_bytes: int = READER_CACHE_BYTES) -> None:
        self.path = None if isinstance(store, zarr.Group) else Path(store)
        if self.path is not None and not self.path.exists():
            raise FileNotFoundError(f"patch store {self.path} does not exist")
        root = store if isinstance(store, zarr.Group) else zarr.open_group(str(store), mode="r")
        self.attrs = dict(root.attrs)
        self.layout = str(self.attrs.get("layout", "patches"))
        if self.layout not in LAYOUTS:
            raise ValueError(f"{self.path}: unknown patch store layout {self.layout!r}")
        wanted = ["n_counted", "patches"] if self.layout == "patches" else ["n_counted", "images", "image_index", "top_left"]
        missing = [name for name in wanted if name not in root]
        if missing:
            raise ValueError(f"{self.path}: patch store (layout {self.layout}) lacks the arrays {missing}")
        self.n_counted = np.asarray(root["n_counted"][:], dtype=np.int64)
        if self.layout == "patches":
            self._patches = root["patches"]
            shape = self._patches.shape
            if len(shape) != 5 or shape[-1] != 3 or self._patches.dtype != np.uint8:
                raise ValueError(f"{self.path}: patches must be uint8 (neurons, k, rf, rf, 3), got "
                                 f"{self._patches.dtype} {shape}")
            self.k, self.rf = int(shape[1]), int(shape[2])
        else:
            self._images = root["images"]
            self._index = np.asarray(root["image_index"][:])
            self._top_left = np.asarray(root["top_left"][:])
            self.k, self.rf = int(self._index.shape[1]), int(self.attrs["rf"])
            self._fill = tuple(int(v) for v in self.attrs.get("fill_rgb", MEAN_GREY))
            self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
            self._cache_limit = max(1, cache_bytes // max(1, int(np.prod(self._images.shape[1:]))))
        if len(self.n_counted) != self.n_neurons:
            raise ValueError(f"{self.path}: n_counted has {len(self.n_counted)} entries for {self.n_neurons} neurons")

    @property
    def n_neurons(self) -> int:
        return int(self._patches.shape[0] if self.layout == "patches" else self._index.shape[0])

    def _image(self, row: int) -> np.ndarray:
        image = self._cache.get(row)
        if image is None:
            image = np.asarray(self._images[row])
            self._cache[row] = image
            if len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(row)
        return image

    @timed("read")
    def neuron(self, neuron: int, count: int | None = None) -> np.ndarray:
        """The first ``count`` (default: all counted) patches of one neuron, uint8 (count, rf, rf, 3)."""
        neuron = int(neuron)
        if not 0 <= neuron < self.n_neurons:
            raise IndexError(f"neuron {neuron} is not in 0..{self.n_neurons - 1}")
        counted = int(self.n_counted[neuron])
        count = counted if count is None else min(int(count), counted)
        if self.layout == "patches":
            return np.asarray(self._patches[neuron, :count])
        out = np.empty((count, self.rf, self.rf, 3), dtype=np.uint8)
        for rank in range(count):
            top, left = (int(v) for v in self._top_left[neuron, rank])
            _cut_into(out[rank], self._image(int(self._index[neuron, rank])), top, left, self._fill)
        return out

    @timed("read")
    def top(self, neurons: slice | Sequence[int], n: int) -> np.ndarray:
        """The first ``n`` slots (best first) of a block of neurons: (m, n, rf, rf, 3) uint8.

        Slots beyond a neuron's ``n_counted`` hold zeros (no real patch); callers mask them.
        """
        n = min(int(n), self.k)
        if isinstance(neurons, slice):
            neurons = range(*neurons.indices(self.n_neurons))
        neurons = [int(i) for i in neurons]
        if self.layout == "patches":
            return np.asarray(self._patches.get_orthogonal_selection((np.asarray(neurons, dtype=int), slice(0, n))))
        out = np.zeros((len(neurons), n, self.rf, self.rf, 3), dtype=np.uint8)
        for i, neuron in enumerate(neurons):
            patches = self.neuron(neuron, n)
            out[i, : len(patches)] = patches
        return out


def read_neuron_patches(store: PathLike | zarr.Group, neuron: int) -> np.ndarray:
    """One neuron's counted patches, uint8 (n_counted, rf, rf, 3), whatever the store's layout."""
    return PatchReader(store).neuron(neuron)
