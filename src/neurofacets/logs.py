"""Logging for workflow scripts: each rule's ``log:`` file receives the package's log.

The log's last line splits the job's wall time into phases (`log_to`, `timed`):
``start`` (from the process's start to the script's call: the interpreter, Snakemake's script
preamble and the imports), ``read`` and ``write`` (time inside the package's readers and
writers marked `timed`) and ``compute`` (the rest of the call).
``benchmarks/default_run.py`` sums them per stage.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .pathlike import PathLike

logger = logging.getLogger(__name__.rpartition(".")[0])  # the package logger, parent of every module's

#: Snakemake marks directory() outputs with a ``.snakemake_timestamp`` file, which zarr reports
#: as a foreign object whenever such a store is opened: harmless, so silenced while a workflow
#: script runs (`log_to`), and nowhere else.
SNAKEMAKE_TIMESTAMP_WARNING = r"Object at \.snakemake_timestamp is not recognized"


#: The phases of the job's time that `timed` functions add to; None outside `log_to`.
_JOB_PHASES: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("neurofacets_job_phases",
                                                                                    default=None)
#: What the last line of a job's log starts with; the JSON object of seconds by phase follows.
PHASES_PREFIX = "job phases (s): "
TIMED_PHASES = ("read", "write")

F = TypeVar("F", bound=Callable[..., Any])


def timed(phase: str) -> Callable[[F], F]:
    """Mark a function as time spent in ``phase`` (``read`` or ``write``) of a job's time.

    Inside `log_to`, the call's wall time is added to the phase; a timed call inside
    another counts once, in the outer one's phase. Outside a job it costs one lookup.
    """
    if phase not in TIMED_PHASES:
        raise ValueError(f"phase {phase!r}: one of {TIMED_PHASES}")

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            phases = _JOB_PHASES.get()
            if phases is None or phases["open"]:
                return func(*args, **kwargs)
            phases["open"] = True
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                phases[phase] += time.perf_counter() - start
                phases["open"] = False

        return wrapper  # type: ignore[return-value]

    return decorate


def process_start_time() -> float | None:
    """When this process started (seconds since the epoch, to 10 ms), from ``/proc``; None elsewhere.

    The process's age is the system's uptime minus its start tick (both to 10 ms): the boot
    time in ``/proc/stat`` is whole seconds, which would put up to a second into ``start``.
    """
    try:
        stat = Path(f"/proc/{os.getpid()}/stat").read_text()
        uptime_before = float(Path("/proc/uptime").read_text().split()[0])
        now = time.time()
        uptime = (uptime_before + float(Path("/proc/uptime").read_text().split()[0])) / 2  # around `now`
    except (OSError, ValueError, IndexError):
        return None
    ticks = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime, after the command name
    return now - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def read_phases(log_text: str) -> dict[str, float] | None:
    """The phases a job's log ends with (`PHASES_PREFIX`), or None when it has none."""
    for line in reversed(log_text.splitlines()):
        _, found, rest = line.partition(PHASES_PREFIX)
        if found:
            return json.loads(rest)
    return None


@contextlib.contextmanager
def log_to(path: PathLike | None, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send the ``neurofacets`` logger (and warnings, tracebacks) to ``path`` and stderr.

    The logger's level, the capture of warnings and the warnings filter are as before when
    the block ends.

    A workflow script wraps its one call in this block, so the rule's ``log:`` file holds
    what happened, including the traceback of a failure. When the block ends without an error,
    its last line gives the job's phases (see the module's docstring; `read_phases`).
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
    entered, started = time.time(), process_start_time()
    phases = {"open": False, **dict.fromkeys(TIMED_PHASES, 0.0)}
    token = _JOB_PHASES.set(phases)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=SNAKEMAKE_TIMESTAMP_WARNING)
            yield logger
        call = time.time() - entered
        split = {"start": None if started is None else round(max(entered - started, 0.0), 3),
                 **{phase: round(phases[phase], 3) for phase in TIMED_PHASES},
                 "compute": round(max(call - sum(phases[p] for p in TIMED_PHASES), 0.0), 3)}
        logger.info("%s%s", PHASES_PREFIX, json.dumps(split))
    except BaseException:
        logger.exception("failed")
        raise
    finally:
        _JOB_PHASES.reset(token)
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(old_level)
        logging.captureWarnings(False)
