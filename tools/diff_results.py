"""Compare two result folders file by file: are they the same outputs, byte for byte?

Used to prove that a refactoring changed no output (README, "Development"):

    python tools/diff_results.py results/before results/after

Every file under either folder is compared by its bytes, with three exceptions that are
records of *when* and *how long*, not results: ``logs/`` and ``benchmarks/`` are skipped,
the creation times in stores' and tables' provenance attributes (``created``, and an ICA
store's ``patches_created``) are ignored, and a PDF's ``/CreationDate`` is ignored. Build both under the same run name (move the first folder aside
before the second run): the name is part of the config digest. Exit status 0 when everything else is identical, 1 otherwise
(the differing files are listed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

SKIPPED_FOLDERS = {"logs", "benchmarks", ".snakemake"}
VOLATILE_KEYS = {"created", "patches_created"}  # creation times (the ICA store records its patch store's)
PDF_DATE = re.compile(rb"/CreationDate \(D:[^)]*\)")


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not (set(p.relative_to(root).parts[:-1]) & SKIPPED_FOLDERS)
    }


def _scrub(obj):
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


def same_output(a: Path, b: Path) -> bool:
    """Whether two files hold the same result (see the module docstring for what is ignored)."""
    da, db = a.read_bytes(), b.read_bytes()
    if da == db:
        return True
    if a.name in ("zarr.json", ".zattrs") or a.suffix == ".json":
        try:
            return _scrub(json.loads(da)) == _scrub(json.loads(db))
        except ValueError:
            return False
    if a.suffix == ".pdf":
        return PDF_DATE.sub(b"", da) == PDF_DATE.sub(b"", db)
    return False


def diff_results(before: Path, after: Path) -> list[str]:
    """Relative paths that differ (or exist on one side only) between two result folders."""
    fa, fb = _files(before), _files(after)
    problems = [f"only in {before}: {p}" for p in sorted(fa - fb)]
    problems += [f"only in {after}: {p}" for p in sorted(fb - fa)]
    problems += [
        f"differs: {p}" for p in sorted(fa & fb) if not same_output(before / p, after / p)
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    problems = diff_results(args.before, args.after)
    for line in problems:
        print(line)
    n = len(_files(args.before))
    print(f"{n} files compared: {'identical' if not problems else f'{len(problems)} differ'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
