"""Class labels of the dataset and the class co-occurrence matrix (CoF).

``CoF[n, c]`` = number of images of class ``c`` among neuron ``n``'s *counted* top-k
images (activation > 0; docs/methods.md). A dead neuron (no positive activation) has an
all-zero row, and every row sums to the neuron's ``n_counted``.

Two label levels exist: ``class`` (the rows of ``classes.csv``, in label order) and,
when the dataset has a coarse mapping, ``coarse`` (the coarse groups, in order of first
appearance in ``classes.csv``). The number of columns is the number of classes of the
dataset, also for classes with no image in any top-k set: that length is the ``N`` of
the sparsity and flatness definitions.

Store ``cof/{layer}.zarr`` (xarray Dataset):

- ``cof`` int64 (neuron, class_name), coordinates ``neuron``, ``class_name`` and, along
  ``class_name``, ``label`` (the class index; class names need not be unique, e.g. the two
  ImageNet "crane" classes) and ``class_id``;
- ``cof_coarse`` int64 (neuron, coarse) when the dataset has coarse labels;
- ``n_counted`` int32 (neuron);
- attrs: ``layer``, ``levels`` (the levels present), ``k``, provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .logs import timed
from .pathlike import PathLike
from .topk import TopK

logger = logging.getLogger(__name__)

LEVELS = ("class", "coarse")
# The data variable and the column dimension of each level in the CoF store.
LEVEL_VARIABLE = {"class": "cof", "coarse": "cof_coarse"}
LEVEL_DIM = {"class": "class_name", "coarse": "coarse"}


@dataclass(frozen=True)
class LabelLevel:
    """One labelling of the images: column names and each image's column index.

    Attributes
    ----------
    level
        ``class`` or ``coarse``.
    names
        Column names (length N).
    code_by_image_id
        int64 (max image id + 1,): column index of each image id, -1 for ids not in the
        dataset.
    """

    level: str
    names: tuple[str, ...]
    code_by_image_id: np.ndarray

    @property
    def n_columns(self) -> int:
        return len(self.names)

    def codes(self, image_id: np.ndarray) -> np.ndarray:
        """Column index of each of ``image_id`` (any shape); unknown ids raise ValueError."""
        image_id = np.asarray(image_id)
        if image_id.size and (image_id.min() < 0 or image_id.max() >= len(self.code_by_image_id)):
            raise ValueError(f"image ids outside 0..{len(self.code_by_image_id) - 1} (not in images.csv)")
        codes = self.code_by_image_id[image_id]
        if np.any(codes < 0):
            raise ValueError("some image ids are not in images.csv")
        return codes

    def permuted(self, rng: np.random.Generator) -> LabelLevel:
        """The same level with the labels shuffled across the dataset's images.

        Class sizes are kept; only which image carries which label changes (the null model).
        """
        known = np.flatnonzero(self.code_by_image_id >= 0)
        shuffled = self.code_by_image_id.copy()
        shuffled[known] = rng.permutation(self.code_by_image_id[known])
        return LabelLevel(self.level, self.names, shuffled)


@dataclass(frozen=True)
class Labels:
    """The dataset's classes and each image's label at every available level."""

    class_table: pd.DataFrame  # classes.csv, sorted by label
    levels: Mapping[str, LabelLevel]

    def level(self, name: str) -> LabelLevel:
        if name not in LEVELS:
            raise ValueError(f"label level must be one of {LEVELS}, got {name!r}")
        if name not in self.levels:
            raise ValueError(
                f"label level {name!r} is not available: the dataset has no 'coarse' column "
                "(configure dataset.coarse_labels)"
            )
        return self.levels[name]


@timed("read")
def load_labels(images_csv: PathLike, classes_csv: PathLike) -> Labels:
    """Read ``images.csv`` and ``classes.csv`` into the label levels used by CoF.

    Parameters
    ----------
    images_csv
        Columns ``image_id``, ``label`` (index into classes.csv) and optionally ``coarse``.
    classes_csv
        Columns ``label``, ``class_id``, ``class_name`` and optionally ``coarse``.
    """
    # only the columns used: memory per image stays a few bytes (no paths, no names)
    # names are text as written: a class "01" or "1.50" must not become the number 1.0 or 1.5
    text = {"class_id": str, "class_name": str, "coarse": str, "wnid": str}
    images = pd.read_csv(images_csv, keep_default_na=False, dtype=text,
                         usecols=lambda column: column in ("image_id", "label", "coarse"))
    classes = pd.read_csv(classes_csv, keep_default_na=False, dtype=text)
    for table, name, needed in ((images, images_csv, ("image_id", "label")), (classes, classes_csv, ("label", "class_name"))):
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}")
    classes = classes.sort_values("label").reset_index(drop=True)
    if not np.array_equal(classes["label"].to_numpy(), np.arange(len(classes))):
        raise ValueError(f"{classes_csv}: labels must be 0..{len(classes) - 1}, each once")
    if len(classes) < 2:
        raise ValueError(f"{classes_csv}: at least 2 classes are needed (sparsity and flatness of one class are undefined)")
    image_id = images["image_id"].to_numpy(np.int64)
    if len(image_id) == 0:
        raise ValueError(f"{images_csv}: no images")
    if image_id.min() < 0 or len(np.unique(image_id)) != len(image_id):
        raise ValueError(f"{images_csv}: image_id must be non-negative and unique")
    label = images["label"].to_numpy(np.int64)
    if label.min() < 0 or label.max() >= len(classes):
        raise ValueError(f"{images_csv}: label outside 0..{len(classes) - 1}")

    def by_id(codes: np.ndarray) -> np.ndarray:
        table = np.full(image_id.max() + 1, -1, dtype=np.int64)
        table[image_id] = codes
        return table

    levels = {"class": LabelLevel("class", tuple(classes["class_name"].astype(str)), by_id(label))}
    if "coarse" in images.columns:
        if "coarse" in classes.columns:
            groups = pd.unique(classes["coarse"].astype(str))
        else:  # fall back to the groups the images carry, in label order
            groups = pd.unique(images.sort_values("label")["coarse"].astype(str))
        index = {g: i for i, g in enumerate(groups)}
        unknown = sorted(set(images["coarse"].astype(str)) - set(index))
        if unknown:
            raise ValueError(f"{images_csv}: coarse groups {unknown[:5]} are not in {classes_csv}")
        codes = images["coarse"].astype(str).map(index).to_numpy(np.int64)
        levels["coarse"] = LabelLevel("coarse", tuple(groups), by_id(codes))
    return Labels(classes, levels)


def count_cof(topk: TopK, level: LabelLevel) -> np.ndarray:
    """CoF counts (neurons, N) of one layer at one label level.

    Only counted top-k entries (activation > 0) contribute.
    """
    codes = level.codes(topk.image_id)
    counted = topk.counted
    neuron = np.broadcast_to(np.arange(topk.n_neurons)[:, None], codes.shape)
    flat = neuron[counted] * level.n_columns + codes[counted]
    counts = np.bincount(flat, minlength=topk.n_neurons * level.n_columns)
    return counts.reshape(topk.n_neurons, level.n_columns).astype(np.int64)


def cof_dataset(topk: TopK, labels: Labels, attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The xarray Dataset written to ``cof/{layer}.zarr`` (every available level)."""
    classes = labels.class_table
    names = np.array(labels.levels["class"].names, dtype=object)
    coords: dict[str, Any] = {
        "neuron": np.arange(topk.n_neurons),
        "class_name": names,
        "label": ("class_name", classes["label"].to_numpy(np.int64)),
    }
    if "class_id" in classes.columns:
        coords["class_id"] = ("class_name", np.array(classes["class_id"].astype(str), dtype=object))
    data = {
        "cof": (("neuron", "class_name"), count_cof(topk, labels.levels["class"])),
        "n_counted": (("neuron",), topk.n_counted),
    }
    if "coarse" in labels.levels:
        coarse = labels.levels["coarse"]
        coords["coarse"] = np.array(coarse.names, dtype=object)
        data["cof_coarse"] = (("neuron", "coarse"), count_cof(topk, coarse))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        {**(attrs or {}), "layer": topk.layer, "levels": list(labels.levels), "k": topk.k, "n_images": topk.n_images}
    )
    return ds


@timed("read")
def read_cof(path: PathLike, level: str = "class") -> xr.DataArray:
    """Load the CoF counts of one level from ``cof/{layer}.zarr`` (in memory).

    Returns a DataArray (neuron, class_name) for ``class`` or (neuron, coarse) for
    ``coarse``; its attrs are the store's.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"CoF store {path} does not exist")
    if level not in LEVELS:
        raise ValueError(f"label level must be one of {LEVELS}, got {level!r}")
    with xr.open_zarr(path, consolidated=False) as ds:
        var = LEVEL_VARIABLE[level]
        if var not in ds:
            raise ValueError(f"{path} has no {level!r} level (the dataset has no coarse labels)")
        da = ds[var].load()
        da.attrs = dict(ds.attrs)
    # Strings come back as numpy StringDType; plain str objects are easier downstream.
    dim = LEVEL_DIM[level]
    return da.assign_coords({dim: np.array([str(s) for s in da[dim].values], dtype=object)})


def content_order(content_key: np.ndarray, image_id: np.ndarray) -> np.ndarray:
    """Positions of the images sorted by content key, then image id (docs/methods.md#top-k-set).

    The order of the pictures themselves: renaming or reordering class folders (hence image
    ids) leaves it unchanged; the id only decides between byte-identical files.
    """
    content_key, image_id = np.asarray(content_key), np.asarray(image_id)
    if content_key.shape != image_id.shape or content_key.ndim != 1:
        raise ValueError(f"content_key {content_key.shape} and image_id {image_id.shape} must be equal 1-d shapes")
    return np.lexsort((image_id, content_key))


def content_permuted(level: LabelLevel, image_id: np.ndarray, order: np.ndarray, rng: np.random.Generator) -> LabelLevel:
    """``level`` with the labels of ``image_id`` shuffled among themselves, in content order.

    The picture at content position i takes the label of the picture at position
    ``rng.permutation(n)[i]``: the same photos under other class names get the same (renamed)
    labels. Class sizes are kept; ids outside ``image_id`` keep theirs (they are in no top-k set).
    """
    image_id = np.asarray(image_id)[order]
    shuffled = level.code_by_image_id.copy()
    shuffled[image_id] = rng.permutation(level.codes(image_id))
    return LabelLevel(level.level, level.names, shuffled)
