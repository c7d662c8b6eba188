"""Worker processes for a layer's fits: ordered results, bounded memory, one BLAS thread each.

Results come back in task order whatever the number of workers, and each worker pins
BLAS to one thread, so a layer's store does not depend on how many workers computed it.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

Task = TypeVar("Task")


def _init_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """Worker start: one BLAS thread (speed and determinism), then the caller's initializer."""
    threadpool_limits(limits=1)
    if initializer is not None:
        initializer(*initargs)


def ordered_map(
    fn: Callable[[Task], Any],
    tasks: Iterable[Task],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[Any]:
    """``map(fn, tasks)`` in order over ``workers`` processes, at most 2 tasks per worker in flight.

    With ``workers == 1`` everything runs in this process (``initializer`` too), BLAS
    pinned to one thread for the duration. Workers are *spawned* (re-importing the main
    script), so a script that calls this with ``workers > 1`` must do so under
    ``if __name__ == "__main__":``; ``fn`` and ``initializer`` must be importable.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        with threadpool_limits(limits=1):
            if initializer is not None:
                initializer(*initargs)
            for task in tasks:
                yield fn(task)
        return
    # spawn, not fork: the parent runs zarr's I/O thread, which a forked child would inherit
    # in a broken state
    context = multiprocessing.get_context("spawn")
    tasks = iter(tasks)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(initializer, initargs)
    ) as pool:
        pending = deque(pool.submit(fn, task) for task in islice(tasks, 2 * workers))
        while pending:
            result = pending.popleft().result()
            for task in islice(tasks, 1):
                pending.append(pool.submit(fn, task))
            yield result
