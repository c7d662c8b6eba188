"""Logging for workflow scripts: each rule's ``log:`` file receives the package's log."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__.rpartition(".")[0])  # the package logger, parent of every module's


@contextlib.contextmanager
def log_to(path: str | Path | None, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send the ``neurofacets`` logger (and warnings, tracebacks) to ``path`` and stderr.

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
