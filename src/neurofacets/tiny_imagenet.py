"""Tiny-ImageNet's labelled validation split as a ``csv`` dataset (``path,label,class_name``).

Tiny-ImageNet keeps its validation photos in one folder, ``val/images/``, and their
classes in ``val/val_annotations.txt`` (tab-separated: file name, WordNet id, bounding
box); ``words.txt`` names each WordNet id. The dataset stage reads a CSV list, so::

    python -m neurofacets.tiny_imagenet ../shared/data/tiny-imagenet-val resources/tiny-imagenet-val.csv

writes one row per photo: ``path`` (relative to the Tiny-ImageNet folder, the dataset's
``root``), ``label`` (the WordNet id, which the dataset stage keeps as the class's ``wnid``)
and ``class_name`` (the first name ``words.txt`` gives it).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pandas as pd

from .pathlike import PathLike
from .store import write_csv


def labels_table(root: PathLike) -> pd.DataFrame:
    """The rows ``path, label, class_name`` of every annotated validation photo, sorted by path.

    Raises
    ------
    FileNotFoundError
        Where ``val/val_annotations.txt`` or ``words.txt`` is missing.
    ValueError
        Where an annotation names a photo that does not exist or a WordNet id that
        ``words.txt`` does not name.
    """
    root = Path(root)
    annotations_path, words_path = root / "val" / "val_annotations.txt", root / "words.txt"
    for path in (annotations_path, words_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: is {root} Tiny-ImageNet's folder?")
    annotations = pd.read_csv(annotations_path, sep="\t", header=None, usecols=[0, 1], names=["file", "wnid"],
                              dtype=str, quoting=csv.QUOTE_NONE)
    words = pd.read_csv(words_path, sep="\t", header=None, names=["wnid", "words"], dtype=str,
                        quoting=csv.QUOTE_NONE, keep_default_na=False)
    names = dict(zip(words["wnid"], words["words"].str.split(",").str[0].str.strip()))
    unnamed = sorted(set(annotations["wnid"]) - set(names))
    if unnamed:
        raise ValueError(f"{annotations_path}: WordNet ids not in {words_path}: {unnamed[:5]}")
    paths = "val/images/" + annotations["file"]
    missing = [p for p in paths if not (root / p).is_file()]
    if missing:
        raise ValueError(f"{annotations_path}: {len(missing)} annotated photos do not exist, e.g. {missing[:3]}")
    table = pd.DataFrame({"path": paths, "label": annotations["wnid"], "class_name": annotations["wnid"].map(names)})
    return table.sort_values("path", kind="stable").reset_index(drop=True)


def write_labels(root: PathLike, out_csv: PathLike) -> pd.DataFrame:
    """Write `labels_table` to ``out_csv`` (atomically) and return it."""
    table = labels_table(root)
    write_csv(out_csv, table)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="Tiny-ImageNet folder (holds val/ and words.txt)")
    parser.add_argument("out", help="CSV to write (the dataset's labels)")
    args = parser.parse_args(argv)
    table = write_labels(args.root, args.out)
    print(f"{len(table)} photos of {table['label'].nunique()} classes -> {args.out}")


if __name__ == "__main__":
    main()
