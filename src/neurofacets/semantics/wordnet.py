"""WordNet 3.0 nouns: the hypernym table shipped with the package, and how it was made.

The table ``data/wordnet30_nouns.csv.gz`` (package data) has one row per (synset,
hypernym) edge, columns ``node`` (the synset's WordNet id, ``n`` + its 8-digit offset in
``data.noun``, e.g. ``n02084071``: the ids ImageNet uses), ``parent`` (a hypernym's id;
empty for the root ``entity.n.01``) and ``name`` (the synset's name as NLTK spells it,
e.g. ``dog.n.01``: the first lemma, lower case, and the synset's sense number for that
lemma in ``index.noun``). Hypernyms are both ``@`` (hypernym) and ``@i`` (instance
hypernym) pointers. It is derived once from Debian's ``wordnet-base`` package::

    apt-get download wordnet-base && dpkg-deb -x wordnet-base_*.deb wn
    python -m neurofacets.semantics.wordnet wn/usr/share/wordnet \\
        src/neurofacets/semantics/data/wordnet30_nouns.csv.gz

and read at run time with no network (`load_wordnet`). WordNet's licence is
``data/WORDNET_LICENSE`` beside it.
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import re
from importlib import resources
from pathlib import Path

import pandas as pd

from ..pathlike import PathLike

logger = logging.getLogger(__name__)

WNID = re.compile(r"^n\d{8}$")
TABLE = "wordnet30_nouns.csv.gz"
# Package data this module reads (load_wordnet); provenance.script_code_digest hashes it.
PACKAGE_DATA = ("data/*",)
HYPERNYM_POINTERS = frozenset({"@", "@i"})


def is_wnid(text: object) -> bool:
    """Whether ``text`` is a WordNet noun id (``n`` and 8 digits, e.g. ``n02084071``)."""
    return isinstance(text, str) and WNID.match(text) is not None


def class_wnids(listing: pd.DataFrame) -> dict[str, str] | None:
    """Each class's WordNet id, from a dataset listing (``class_id``, ``class_name``[, ``wnid``]).

    Per class the first that is a WordNet id: the ``wnid`` column (a CSV dataset's), the
    ``class_id`` (an ImageNet-style folder name), the ``class_name``; an empty string for
    a class with none. None when no class has one (the dataset is not WordNet-labelled).
    A class whose rows give different wnids is an error.
    """
    columns = [c for c in ("wnid", "class_id", "class_name") if c in listing.columns]
    out: dict[str, str] = {}
    for class_id, rows in listing.groupby("class_id", sort=False):
        found = ""
        for column in columns:
            values = {str(v) for v in rows[column]}
            ids = {v for v in values if is_wnid(v)}
            if len(ids) > 1:
                raise ValueError(f"class {class_id!r}: its images carry different {column} values {sorted(ids)[:3]}")
            if ids and len(values) == 1:
                found = ids.pop()
                break
        out[str(class_id)] = found
    return out if any(out.values()) else None


def parse_index_noun(lines: list[str]) -> dict[str, list[int]]:
    """``index.noun`` lines -> ``{lemma: [synset offsets in sense order]}``.

    A data line is ``lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt
    synset_offset...``: the offsets are its last ``synset_cnt`` fields. Licence lines
    (starting with two spaces) are skipped.
    """
    senses: dict[str, list[int]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("  "):
            continue
        fields = line.split()
        try:
            count = int(fields[2])
            offsets = [int(f) for f in fields[len(fields) - count:]]
        except (IndexError, ValueError) as err:
            raise ValueError(f"index.noun line {number} is not a WordNet index line: {line[:80]!r}") from err
        senses[fields[0]] = offsets
    return senses


def parse_data_noun(lines: list[str], senses: dict[str, list[int]]) -> pd.DataFrame:
    """``data.noun`` lines -> the edge table (``node``, ``parent``, ``name``), see the module docstring.

    A data line is ``offset lex_filenum ss_type w_cnt (word lex_id){w_cnt} p_cnt
    (pointer_symbol offset pos source/target){p_cnt} [frames] | gloss``; ``w_cnt`` is two
    hexadecimal digits, ``p_cnt`` three decimal ones. A root synset gets one row with an
    empty parent, so every synset has at least one row.
    """
    rows: list[tuple[str, str, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("  "):
            continue
        fields = line.split(" | ", 1)[0].split()
        try:
            offset = int(fields[0])
            n_words = int(fields[3], 16)
            lemma = fields[4].lower()
            at = 4 + 2 * n_words
            n_pointers = int(fields[at])
            pointers = [fields[at + 1 + 4 * i: at + 5 + 4 * i] for i in range(n_pointers)]
        except (IndexError, ValueError) as err:
            raise ValueError(f"data.noun line {number} is not a WordNet data line: {line[:80]!r}") from err
        if lemma not in senses or offset not in senses[lemma]:
            raise ValueError(f"data.noun line {number}: synset {offset:08d} is not a sense of {lemma!r} in index.noun")
        name = f"{lemma}.n.{senses[lemma].index(offset) + 1:02d}"
        node = f"n{offset:08d}"
        parents = [f"n{int(p[1]):08d}" for p in pointers if p[0] in HYPERNYM_POINTERS and p[2] == "n"]
        rows.extend((node, parent, name) for parent in (parents or [""]))
    return pd.DataFrame(rows, columns=["node", "parent", "name"])


def make_table(wordnet_dir: PathLike) -> pd.DataFrame:
    """The edge table from a WordNet database folder holding ``data.noun`` and ``index.noun``."""
    folder = Path(wordnet_dir)
    files = {name: folder / name for name in ("data.noun", "index.noun")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"WordNet files missing: {missing} (apt-get download wordnet-base, then dpkg-deb -x)")

    def read(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8", errors="strict").splitlines()

    return parse_data_noun(read(files["data.noun"]), parse_index_noun(read(files["index.noun"])))


def write_table(table: pd.DataFrame, out: PathLike) -> None:
    """Write the table as gzip CSV with a fixed mtime, so the same input gives the same bytes."""
    text = table.to_csv(index=False, lineterminator="\n").encode()
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(text)
    Path(out).write_bytes(buffer.getvalue())


def load_wordnet() -> pd.DataFrame:
    """The packaged WordNet 3.0 noun edge table (``node``, ``parent``, ``name``); no network."""
    source = resources.files("neurofacets.semantics").joinpath("data", TABLE)
    with source.open("rb") as raw:
        return pd.read_csv(raw, compression="gzip", dtype=str, keep_default_na=False)


def main(argv: list[str] | None = None) -> None:
    """Command line: derive the packaged table from a WordNet database folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wordnet_dir", help="folder with data.noun and index.noun (Debian: /usr/share/wordnet)")
    parser.add_argument("out", help="output .csv.gz")
    args = parser.parse_args(argv)
    table = make_table(args.wordnet_dir)
    write_table(table, args.out)
    print(f"{table['node'].nunique()} noun synsets, {int((table['parent'] != '').sum())} hypernym edges -> {args.out}")


if __name__ == "__main__":
    main()
