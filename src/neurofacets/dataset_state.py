"""The state of a run's dataset: what tells Snakemake that the images changed.

The image files are the workflow's first input, but no rule names them: the ``dataset``
rule lists a folder (or the files a CSV names) while it runs. Its ``params`` therefore carry
`dataset_state`: a SHA-256 over the relative path, size and modification time (ns) of
every entry the lister sees, so that adding, removing, replacing or overwriting an image
changes a parameter, and Snakemake's ``params`` rerun trigger reruns the ``dataset`` job. The
job writes the same state to ``dataset/state.json``, an input of every rule that reads the
image files (``extract``, ``patches``): their input changes whenever the images do, even when
``images.csv`` (paths and labels only) comes out byte for byte the same.

What is covered, per ``dataset.format``:

``folder``
    Every class folder's name and every entry `neurofacets.datasets.list_folder` lists
    (`iter_class_folder`: recursive; names starting with ``.`` not listed; links listed,
    never followed into folders; a link contributes its target text and what it leads to).
``csv``
    Every path the labels file lists, joined to ``dataset.root`` as
    `neurofacets.datasets.list_csv` joins it (size and time of the file it leads to).
    The labels file itself is an input of the rule.
``probes``
    Nothing: the ``probes`` rule generates the images from its own params.

One ``stat`` per file, no file opened but the labels CSV: about 1.4 times a bare Python
``scandir`` + ``lstat`` loop over the same files (``benchmarks/dataset_fingerprint.py``).
Every ``snakemake`` call that plans the ``dataset`` job pays it once (the runs of a
multi-run config share it: ``rules/common.smk``). A change that keeps a file's size and
its modification time (to the file system's timestamp resolution, a few ms) is not seen.

Importing this module imports nothing beyond the standard library and
[`neurofacets.config`][] (it runs while Snakemake parses the workflow).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import labels_path
from .pathlike import PathLike

#: The digest's length in hex digits (SHA-256/16, as the package's other digests).
DIGEST_HEX = 16
#: CSV rows stated and hashed at a time (one task of the thread pool).
_BATCH = 8192

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetState:
    """What the dataset's files were when they were listed.

    Attributes
    ----------
    fingerprint
        SHA-256 (first 16 hex digits) over the sorted entries (see the module's text);
        ``"probes"`` for the synthetic probe images.
    entries
        How many files (folder entries, CSV rows) it covers.
    """

    fingerprint: str
    entries: int

    def as_param(self) -> dict[str, Any]:
        """The state as a rule parameter: a dict of builtins, compared by Snakemake by its repr."""
        return asdict(self)


def dataset_state(dataset: Mapping[str, Any], *, threads: int = 1) -> DatasetState:
    """The state of the files ``dataset`` (the config's ``dataset`` section) lists.

    Never raises for a dataset that cannot be listed (a missing root, an unreadable CSV):
    such a state is a fingerprint of the error, and the ``dataset`` job reports the problem.

    Parameters
    ----------
    dataset
        ``format``, ``root`` and, for ``csv``, ``labels``, as the validated config holds them.
    threads
        Class folders (CSV batches of 8192 rows) stated at once; the result does not depend on it.
    """
    fmt = dataset["format"]
    if fmt == "probes":
        return DatasetState("probes", 0)
    digest = hashlib.sha256(f"{fmt}\0".encode())
    if fmt == "folder":
        entries = _hash_folder(Path(dataset["root"]), digest, threads)
    elif fmt == "csv":
        entries = _hash_csv(labels_path(dataset["labels"], dataset["root"]), Path(dataset["root"]), digest, threads)
    else:
        raise ValueError(f"dataset.format: {fmt!r} is not probes, folder or csv")
    return DatasetState(digest.hexdigest()[:DIGEST_HEX], entries)


def dataset_fingerprint(dataset: Mapping[str, Any], *, threads: int = 1) -> str:
    """SHA-256/16 of the state of the files ``dataset`` lists (`dataset_state`)."""
    return dataset_state(dataset, threads=threads).fingerprint


def iter_class_folder(folder: str | os.PathLike) -> Iterator[os.DirEntry]:
    """Every entry below ``folder`` that `neurofacets.datasets.list_folder` lists, in no set order.

    That is every entry that is not a folder (files, links whether or not they lead anywhere,
    fifos, ...) at any depth, but those whose own name starts with ``.``; folders are entered
    (hidden ones too: ``Path.rglob`` enters them), linked folders are not. A folder that
    cannot be read is passed over, as ``Path.rglob`` passes over it.
    """
    pending = [os.fspath(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif not entry.name.startswith("."):
                        yield entry
        except OSError:
            continue


def _entry_text(entry: os.DirEntry) -> str:
    """Size and modification time (ns) of a listed entry; a link: its target and what it leads to."""
    if not entry.is_symlink():
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as err:  # removed while listed
            return f"error {err.errno}"
        return f"{st.st_size}\0{st.st_mtime_ns}"
    try:
        target = os.readlink(entry.path)
    except OSError as err:
        target = f"error {err.errno}"
    return f"{_path_text(entry.path)}\0link {target}"


def _path_text(path: str) -> str:
    """Size and modification time (ns) of the file ``path`` leads to (links followed); a
    folder is only a folder (the dataset job refuses it, whatever it holds)."""
    try:
        st = os.stat(path)
    except OSError as err:
        return f"error {err.errno}"
    except ValueError:  # a NUL byte in a CSV path: the dataset job reports it
        return "invalid"
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    return f"{st.st_size}\0{st.st_mtime_ns}"


def _hash_folder(root: Path, digest, threads: int) -> int:
    """Feed the class folders and a digest of each one's sorted entries to ``digest``; the number of entries."""
    try:
        with os.scandir(root) as it:
            # Path.is_dir follows links: a linked class folder is a class (list_folder)
            classes = sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError as err:
        digest.update(f"unreadable root {root}: {err.errno}".encode())
        return 0
    folders = [os.path.join(root, name) for name in classes]
    count = 0
    for name, (n, folder_digest) in zip(classes, _map(_folder_digest, folders, threads)):
        count += n
        digest.update(f"class {name}\0{n}\0{folder_digest}\n".encode("utf-8", "surrogateescape"))
    return count


def _folder_digest(folder: str) -> tuple[int, str]:
    """How many entries one class folder lists, and SHA-256 of their sorted records."""
    skip = len(folder) + 1
    records = sorted(f"{entry.path[skip:]}\0{_entry_text(entry)}\n" for entry in iter_class_folder(folder))
    return len(records), hashlib.sha256("".join(records).encode("utf-8", "surrogateescape")).hexdigest()


def _hash_csv(labels: Path, root: Path, digest, threads: int) -> int:
    """Feed a digest of every path the CSV lists, with its state, to ``digest`` in the CSV's order; the number of rows."""
    try:
        with open(labels, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            reader = csv.reader(f)
            header = next((row for row in reader if row), [])
            if "path" not in header:
                digest.update(b"no path column")
                return 0
            column = header.index("path")
            paths = [row[column] for row in reader if len(row) > column]
    except (OSError, csv.Error) as err:  # the dataset job says what is wrong with the file
        digest.update(f"unreadable labels {labels}: {err}".encode("utf-8", "surrogateescape"))
        return 0
    batches = [(root, paths[i : i + _BATCH]) for i in range(0, len(paths), _BATCH)]
    for batch_digest in _map(_csv_batch_digest, batches, threads):
        digest.update(batch_digest.encode())
    return len(paths)


def _csv_batch_digest(batch: tuple[Path, list[str]]) -> str:
    """SHA-256 of the records of consecutive CSV paths (joined to ``root`` as ``list_csv`` joins them)."""
    root, paths = batch
    records = "".join(f"{p}\0{_path_text(os.path.join(root, p))}\n" for p in paths)
    return hashlib.sha256(records.encode("utf-8", "surrogateescape")).hexdigest()


def _map(function, items: list, threads: int) -> Iterator:
    """``map`` over ``items``, in order, on ``threads`` threads (stat calls release the GIL)."""
    if threads <= 1 or len(items) <= 1:
        return map(function, items)
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return iter(list(pool.map(function, items)))


def write_dataset_state(state: Mapping[str, Any], path: PathLike) -> None:
    """Write ``state`` (`DatasetState.as_param`) to ``path`` as JSON, atomically, and log it."""
    from .store import atomic_output  # zarr and numpy: not at parse time

    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(dict(state), indent=1, sort_keys=True) + "\n")
    logger.info(
        "dataset state: fingerprint %s over %d files (sha256/16 of relative path, size, mtime_ns)",
        state["fingerprint"], state["entries"],
    )
