"""What the semantics checkpoints tell the workflow while it plans the jobs.

Snakemake calls these while it builds the job graph (``rules/semantics_common.smk``,
``rules/runs_common.smk``): in every call and, on a cluster, in every job. They read the two
small tables with the standard library, so planning imports neither pandas nor scipy (seconds
per call on a busy node). `stage` writes both tables.
"""

from __future__ import annotations

import csv
import os


def has_hierarchy(hierarchy_csv: str | os.PathLike[str]) -> bool:
    """Whether ``semantics/hierarchy.csv`` holds a hierarchy (False: the stage was skipped).

    The file always has its header; a hierarchy is at least one non-blank row below it.
    """
    with open(hierarchy_csv, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows, None)
        return any(any(cell.strip() for cell in row) for row in rows)


def read_runs_with_hierarchy(runs_csv: str | os.PathLike[str]) -> list[str]:
    """The runs of ``semantics/runs.csv`` (``run,has_hierarchy``) that have a class hierarchy, in order."""
    with open(runs_csv, newline="", encoding="utf-8") as f:
        return [row["run"] for row in csv.DictReader(f) if row["has_hierarchy"].strip().lower() in ("true", "1")]
