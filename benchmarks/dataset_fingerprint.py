"""Cost of the dataset's state (`neurofacets.dataset_state`) at N and 10N files, extrapolated to ImageNet train.

Every `snakemake` call that plans the `dataset` job computes it (one `stat` per file), so it
is paid on each call. Makes N and 10N empty files in class folders under a temporary
folder (default 20,000 in 100 folders and 200,000 in 1,000: ImageNet's layout, fewer per
folder), then times, per set:

- `floor`: the bare walk, `os.scandir` + one `lstat` per entry in a Python loop (what any
  fingerprint over sizes and times costs at least, on this machine);
- `folder cold-ish`: the first `dataset_state` after the files were made (their inodes are
  in the cache: a truly cold run needs `--drop-caches`, as root);
- `folder warm`: the best of `--repeat` further calls (1 thread, then `--threads`);
- `csv warm`: the same files listed by a labels CSV (`format: csv`);
- `list_folder`: what the `dataset` job itself spends listing (pandas included), once,

each as seconds, microseconds per file and the extrapolation to 1,281,167 files, printed as
a Markdown table for docs/benchmarks.md.

    python benchmarks/dataset_fingerprint.py [--files 20000] [--folders 100] [--scale 10] [--threads 8]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from neurofacets.dataset_state import dataset_state

IMAGENET_TRAIN = 1_281_167


def make_files(root: Path, files: int, folders: int) -> float:
    """``files`` empty files spread over ``folders`` class folders; the seconds it took."""
    start = time.perf_counter()
    for c in range(folders):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(c, files, folders):
            os.close(os.open(folder / f"n{c:08d}_{i}.JPEG", os.O_CREAT | os.O_WRONLY, 0o644))
    return time.perf_counter() - start


def write_labels(root: Path, csv_path: Path) -> None:
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for folder in sorted(root.iterdir()):
            for file in sorted(folder.iterdir()):
                writer.writerow([f"{folder.name}/{file.name}", folder.name])


def floor_walk(root: Path) -> int:
    """scandir + one lstat per entry: the least a (size, mtime) fingerprint costs."""
    n = 0
    for folder in os.scandir(root):
        for entry in os.scandir(folder.path):
            entry.stat(follow_symlinks=False)
            n += 1
    return n


def timed(function, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def measure(base: Path, files: int, folders: int, args) -> list[tuple[str, float]]:
    root = base / f"set-{files}"
    made = make_files(root, files, folders)
    print(f"{files} files in {folders} folders made in {made:.1f} s", flush=True)
    folder = {"format": "folder", "root": str(root)}
    rows = []
    if args.drop_caches:
        if drop_caches():
            rows.append(("folder cold (caches dropped)", timed(lambda: dataset_state(folder))))
        else:
            print("cannot drop caches (not root): no cold row")
    rows.append(("folder cold-ish (first call)", timed(lambda: dataset_state(folder))))
    rows.append(("floor: scandir + lstat loop", timed(lambda: floor_walk(root), args.repeat)))
    rows.append(("folder warm, 1 thread", timed(lambda: dataset_state(folder), args.repeat)))
    if args.threads > 1:
        rows.append((f"folder warm, {args.threads} threads",
                     timed(lambda: dataset_state(folder, threads=args.threads), args.repeat)))
    labels = base / f"labels-{files}.csv"
    write_labels(root, labels)
    listed = {"format": "csv", "root": str(root), "labels": str(labels)}
    rows.append(("csv warm, 1 thread", timed(lambda: dataset_state(listed), args.repeat)))
    if args.threads > 1:
        rows.append((f"csv warm, {args.threads} threads",
                     timed(lambda: dataset_state(listed, threads=args.threads), args.repeat)))
    if not args.no_list_folder:
        from neurofacets.datasets import list_folder

        rows.append(("list_folder (the dataset job's listing)", timed(lambda: list_folder(root))))
    assert dataset_state(folder).entries == files
    shutil.rmtree(root)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--scale", type=int, default=10, help="the second set has scale x files and folders")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to make the files (default: the system's temp folder)")
    parser.add_argument("--drop-caches", action="store_true", help="also time a cold run (needs root)")
    parser.add_argument("--no-list-folder", action="store_true")
    args = parser.parse_args()
    print(f"{platform.node()}: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="fingerprint-") as tmp:
        fstype = subprocess.run(["df", "--output=fstype", tmp], check=False, capture_output=True, text=True).stdout.split()
        print(f"files under {tmp} ({fstype[-1] if fstype else 'file system unknown'})")
        for files, folders in ((args.files, args.folders), (args.files * args.scale, args.folders * args.scale)):
            results[files] = measure(Path(tmp), files, folders, args)
    small, large = results
    print()
    print(f"| measure | {small:,} files: s | µs/file | {large:,} files: s | µs/file | ratio 10N/N "
          f"| {IMAGENET_TRAIN:,} files (from 10N): s |")
    print("|---|---|---|---|---|---|---|")
    for (name, t_small), (_, t_large) in zip(results[small], results[large]):
        print(f"| {name} | {t_small:.3f} | {t_small / small * 1e6:.2f} | {t_large:.3f} | "
              f"{t_large / large * 1e6:.2f} | {t_large / t_small:.1f} | {t_large / large * IMAGENET_TRAIN:.1f} |")


if __name__ == "__main__":
    main()
