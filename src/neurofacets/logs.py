"""Logging for workflow scripts: each rule's ``log:`` file receives the package's log."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from .pathlike import PathLike

logger = logging.getLogger(__name__.rpartition(".")[0])  # the package logger, parent of every module's

#: Snakemake marks directory() outputs with a ``.snakemake_timestamp`` file, which zarr reports
#: as a foreign object whenever such a store is opened: harmless, so silenced while a workflow
#: script runs (`log_to`), and nowhere else.
SNAKEMAKE_TIMESTAMP_WARNING = r"Object at \.snakemake_timestamp is not recognized"


@contextlib.contextmanager
def log_to(path: PathLike | None, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send the ``neurofacets`` logger (and warnings, tracebacks) to ``path`` and stderr.

    The logger's level, the capture of warnings and the warnings filter are as before when
    the block ends.

    A workflow script wraps its one call in this block, so the rule's ``log:`` file holds
    what happened, including the traceback of a failure.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    old_level = logger.level
    logger.setLevel(level)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=SNAKEMAKE_TIMESTAMP_WARNING)
            yield logger
    except BaseException:
        logger.exception("failed")
        raise
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(old_level)
        logging.captureWarnings(False)
