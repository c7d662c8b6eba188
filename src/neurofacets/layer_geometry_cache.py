"""The ``layers`` job's table kept under ``resources/``, per architecture, input size and layers.

Measuring the receptive fields (`neurofacets.models.network.layer_geometry`) builds the
network and back-propagates through it: half a minute for VGG16 on a small CPU, the same every
run of the same model. The table it writes depends only on the architecture, the configured
layers, the input size and the code that measures; so the first run of a model keeps a copy in
``resources/layer_geometry/``, named by a digest of exactly those (with the version of the
library that defines the architecture), and a later run copies it byte for byte instead of
measuring again. An architecture a library does not pin (an own ``python:`` model, whose file
may change under the same name, or a Hugging Face model read from a folder) is measured every
time; so is any key whose copy is missing or unreadable.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from .pathlike import PathLike

logger = logging.getLogger(__name__)

#: Where the tables are kept, relative to the workflow's directory (beside ``resources/weights``).
CACHE_DIR = "resources/layer_geometry"


def cache_name(arch: str, spec: str | Sequence[str], image_size: int, code: str) -> str | None:
    """The file name a table is kept under, or None for an architecture no library pins.

    Parameters
    ----------
    arch, spec, image_size
        ``model.arch``, ``model.layers`` and ``extraction.image_size`` as configured.
    code
        A digest of the code that measures (the rule's ``code`` param: every package module its
        script imports).
    """
    from .model_spec import parse_model_spec
    from .models import MODEL_SOURCES

    model = parse_model_spec(arch)
    distribution = MODEL_SOURCES[model.family].architecture_distribution
    if distribution is None:
        return None
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    key = json.dumps({"arch": model.canonical, "layers": spec, "image_size": int(image_size), "code": code,
                      "library": [distribution, version]}, sort_keys=True)
    return f"{model.file_token}-{int(image_size)}px-{hashlib.sha256(key.encode()).hexdigest()[:16]}.csv"


def _usable(path: Path) -> bool:
    """Whether a kept table reads as a layer table (`neurofacets.readers.read_layers`)."""
    from .readers import read_layers

    try:
        read_layers(path)
    except (OSError, ValueError) as error:
        logger.warning("kept layer table %s is unreadable (%s): measuring again", path, error)
        return False
    return True


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a private temporary name in ``target``'s folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # a name of this call's own (two runs may keep the same table at once), created by the copy
    # itself so that the file's mode follows the umask as any other output's does
    tmp = target.parent / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex}"
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_layers_table_kept(arch: str, spec: str | Sequence[str], image_size: int, out_csv: PathLike, *,
                            code: str, cache_dir: PathLike = CACHE_DIR) -> Path:
    """The ``layers`` rule: ``layers.csv`` copied from the kept table of the same key, else measured
    (`neurofacets.models.network.write_layers_table`) and kept for the next run."""
    out_csv = Path(out_csv)
    name = cache_name(arch, spec, image_size, code)
    kept = Path(cache_dir) / name if name else None
    if kept is not None and kept.is_file() and _usable(kept):
        _copy_atomically(kept, out_csv)
        logger.info("layer geometry of %s at %d px: %s, measured by an earlier run with the same code", arch,
                    image_size, kept)
        return out_csv
    from .models import write_layers_table

    write_layers_table(arch, spec, image_size, str(out_csv))
    if kept is None:
        logger.info("layer geometry of %s measured (its architecture is not pinned by a library: not kept)", arch)
        return out_csv
    try:
        _copy_atomically(out_csv, kept)
        logger.info("layer geometry of %s at %d px measured, kept as %s", arch, image_size, kept)
    except OSError as error:  # a read-only resources/ costs the next run a measurement, nothing else
        logger.warning("layer geometry measured, not kept (%s): %s", kept, error)
    return out_csv
