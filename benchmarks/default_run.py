"""Time the default run from an empty run folder, and write docs/benchmarks/default_run.md.

Two builds, each from an empty ``results/<run>`` (the weights already prepared under
``resources/``; ``--empty-resources`` moves ``resources/`` aside first, so the weights are
prepared too, and puts it back after):

1. only the run's shards (``snakemake results/<run>/activations/shard-000.zarr ... --cores N
   --config run=<run>``: the probes, dataset, layer table and the forward pass);
2. the whole default run (``snakemake --cores N --config run=<run>``).

For each: wall time, CPU time (user + system of every process the build ran), the largest
process's peak RSS; for the whole run also the disk the run folder takes, the number of jobs,
and per stage the jobs' wall seconds from Snakemake's benchmark files
(``results/<run>/benchmarks/...``) split into the phases each job's log ends with
(``neurofacets.logs``: start = interpreter, Snakemake's script preamble and imports; read;
compute; write). The ratio is the whole run's wall time over the shards' (issue 30's measure).
The page records the commit, date, CPU model, core count, vector extensions and the load
average before and after, so a number is never shown without where and when it was measured.

    python benchmarks/default_run.py                      # the default run, 2 cores, run name "bench"
    python benchmarks/default_run.py --empty-resources    # also from empty resources/
    python benchmarks/default_run.py --configfile my.yaml --out /tmp/x.md   # a smaller check
    python benchmarks/default_run.py --replace --before 7e386c7   # beside an earlier profile

Run it on a quiet machine: other work on the cores changes every number. Each measurement of
the default run itself (no ``--configfile``, default ``--out``) is also appended to
``benchmarks/default_run_history.csv``, and the page states the range over every machine and
commit there, so one page carries each number once with where and when it was measured; its
per-stage profile goes to ``benchmarks/default_run_stages.csv``, and ``--before COMMIT`` sets an
earlier profile beside it (before and after a change, on the same machine).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from neurofacets.figure_table import FIGURE_TABLE  # noqa: E402
from neurofacets.layer_geometry_cache import CACHE_DIR  # noqa: E402
from neurofacets.logs import read_phases  # noqa: E402

#: The vector extensions worth naming (from /proc/cpuinfo's flags), in this order.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                "amx_tile", "amx_bf16", "asimd", "sve")
PHASES = ("start", "read", "compute", "write")
#: Every measurement of the default run, one row each (the page's "across machines" table).
HISTORY = REPO / "benchmarks" / "default_run_history.csv"
#: Every measurement's per-stage profile, one row per (commit, date, stage): the page sets the
#: latest beside an earlier one (``--before``), measured on the same machine.
STAGE_HISTORY = REPO / "benchmarks" / "default_run_stages.csv"
STAGE_COLUMNS = ("commit", "date", "cpu", "stage", "jobs", "s", "start", "read", "compute", "write", "logged")
DEFAULT_OUT = REPO / "docs" / "benchmarks" / "default_run.md"
HISTORY_COLUMNS = ("commit", "date", "cpu", "cores", "flags", "load_before", "load_after", "shards_wall_s",
                   "full_wall_s", "ratio", "cpu_s", "max_rss_mb", "jobs", "disk_mb", "source")
#: Runs a command, then prints its children's resource use (user, system, peak RSS) as JSON.
_MEASURE = (
    "import json, resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print('RUSAGE ' + json.dumps({'code': code, 'cpu_s': u.ru_utime + u.ru_stime, 'max_rss_kb': u.ru_maxrss}))\n"
)


def machine() -> dict[str, str]:
    """CPU model, cores, vector extensions, OS and Python of this machine."""
    info = {"cpu": platform.processor() or platform.machine(), "flags": ""}
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
        info["cpu"] = model.group(1).strip() if model else info["cpu"]
        present = set(flags.group(1).split()) if flags else set()
        info["flags"] = " ".join(f for f in VECTOR_FLAGS if f in present) or "none of " + ", ".join(VECTOR_FLAGS)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["cores"] = f"{usable} usable of {os.cpu_count()}"
    info["system"] = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return info


def snakemake_start_seconds() -> float:
    """Wall seconds of ``snakemake --version``: what every snakemake call costs before its work.

    Part of both builds' wall time. Its executor plugins load at start; the SLURM one asks
    ``scontrol`` for the cluster's settings and waits up to 10 s where SLURM is installed
    but its controller is not running.
    """
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--version"], cwd=REPO, capture_output=True)
    return time.perf_counter() - start


def commit() -> str:
    """The checkout's commit (with ``+changes`` when the work tree differs from it)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def snakemake_build(targets: Sequence[str], cores: int, run: str, configfiles: Sequence[str]) -> dict:
    """Run one build; return its wall and CPU seconds, peak RSS (MB), job count and output."""
    # targets first, --configfile last: it takes every following word as a file
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", str(cores), "--config", f"run={run}"]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    started_at = time.time()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    usage = json.loads(done.stdout.rpartition("RUSAGE ")[2])
    if usage["code"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    jobs = re.search(r"^total\s+(\d+)\s*$", done.stderr, re.M)
    return {"command": " ".join(["snakemake", *cmd[3:]]), "wall_s": wall, "started_at": started_at,
            "cpu_s": usage["cpu_s"],
            "max_rss_mb": usage["max_rss_kb"] / 1024, "jobs": int(jobs.group(1)) if jobs else None}


#: What a researcher reads first: the per-layer summary and the paper's Figs. 1-3.
FIRST_RESULTS = ("summary.csv", "figures/fig1_*", "figures/fig2_*", "figures/fig3_*")


def first_results_s(out: Path, started_at: float) -> float | None:
    """Seconds from the build's start until every `FIRST_RESULTS` file was written (None if one is missing)."""
    times = []
    for pattern in FIRST_RESULTS:
        found = list(out.glob(pattern))
        if not found:
            return None
        times += [f.stat().st_mtime for f in found]
    return max(times) - started_at


def disk_mb(folder: Path) -> float:
    """What the files under ``folder`` take on disk (allocated blocks), in MB."""
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) / 1e6


def stage_of(relative: Path, figure_stems: set[str]) -> str:
    """The stage a benchmark file belongs to: its folder, or its name; every figure is ``figures``."""
    name = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    return "figures" if name in figure_stems else name


def stage_table(out: Path) -> dict[str, dict[str, float]]:
    """Per stage: jobs, the jobs' wall seconds (benchmark files) and their phases (job logs)."""
    stems = {figure.stem for figure in FIGURE_TABLE}
    stages: dict[str, dict[str, float]] = {}
    for tsv in sorted((out / "benchmarks").rglob("*.tsv")):
        relative = tsv.relative_to(out / "benchmarks")
        row = stages.setdefault(stage_of(relative, stems), {"jobs": 0, "s": 0.0, **dict.fromkeys(PHASES, 0.0),
                                                             "logged": 0})
        lines = tsv.read_text().splitlines()
        row["jobs"] += 1
        row["s"] += float(lines[1].split("\t")[0])
        log = (out / "logs" / relative).with_suffix(".log")
        phases = read_phases(log.read_text()) if log.is_file() else None
        if phases and phases.get("start") is not None:
            row["logged"] += 1
            for phase in PHASES:
                row[phase] += phases[phase]
    return stages


def read_history(path: Path = HISTORY) -> list[dict[str, str]]:
    """The measurements kept so far (`HISTORY`), oldest first; none when the file is absent."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def history_row(info: dict, shards: dict, full: dict) -> dict[str, str]:
    """This measurement as a `HISTORY_COLUMNS` row."""
    return {"commit": info["commit"], "date": info["date"], "cpu": info["cpu"], "cores": info["cores"],
            "flags": info["flags"], "load_before": info["load_before"], "load_after": info["load_after"],
            "shards_wall_s": f"{shards['wall_s']:.0f}", "full_wall_s": f"{full['wall_s']:.0f}",
            "ratio": f"{full['wall_s'] / shards['wall_s']:.2f}", "cpu_s": f"{full['cpu_s']:.0f}",
            "max_rss_mb": f"{full['max_rss_mb']:.0f}", "jobs": str(full["jobs"]),
            "disk_mb": f"{full['disk_mb']:.0f}", "source": "benchmarks/default_run.py"}


def append_rows(rows: Sequence[dict[str, str]], path: Path, columns: Sequence[str]) -> None:
    """Add ``rows`` to a kept CSV (its header written with the first rows)."""
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def append_history(row: dict[str, str], path: Path = HISTORY) -> None:
    """Add ``row`` to the kept measurements (`HISTORY`)."""
    append_rows([row], path, HISTORY_COLUMNS)


def stage_rows(info: dict, stages: dict[str, dict[str, float]]) -> list[dict[str, str]]:
    """This measurement's per-stage profile as `STAGE_COLUMNS` rows."""
    return [{"commit": info["commit"], "date": info["date"], "cpu": info["cpu"], "stage": name,
             "jobs": str(int(row["jobs"])), "s": f"{row['s']:.1f}",
             **{p: f"{row[p]:.1f}" for p in PHASES}, "logged": str(int(row["logged"]))}
            for name, row in stages.items()]


def append_stages(rows: Sequence[dict[str, str]], path: Path = STAGE_HISTORY) -> None:
    """Add a measurement's stage rows to `STAGE_HISTORY`."""
    append_rows(rows, path, STAGE_COLUMNS)


def read_stages(commit: str, path: Path = STAGE_HISTORY) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """The latest kept profile of ``commit`` (a prefix is enough): (its commit/date/CPU, per stage)."""
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8"))) if path.is_file() else []
    mine = [r for r in rows if r["commit"].startswith(commit)]
    if not mine:
        raise SystemExit(f"no stage profile of commit {commit!r} in {path}")
    last = max((r["date"], r["commit"]) for r in mine)
    kept = [r for r in mine if (r["date"], r["commit"]) == last]
    stages = {r["stage"]: {"jobs": int(r["jobs"]), "s": float(r["s"]), **{p: float(r[p]) for p in PHASES},
                           "logged": int(r["logged"])} for r in kept}
    return {"commit": kept[0]["commit"], "date": kept[0]["date"], "cpu": kept[0]["cpu"]}, stages


def side_by_side(before: tuple[dict[str, str], dict], after: tuple[dict[str, str], dict]) -> list[str]:
    """The page's lines setting two stage profiles side by side (job wall s, start s, compute s)."""
    (b_info, b), (a_info, a) = before, after
    lines = [
        "## Before and after, per stage",
        "",
        f"Jobs' wall seconds per stage at `{b_info['commit']}` ({b_info['date']}, {b_info['cpu']}) and at "
        f"`{a_info['commit']}` ({a_info['date']}, {a_info['cpu']}), each from its own fresh default run "
        "(`benchmarks/default_run_stages.csv`); `start` and `compute` as above. A stage present in one "
        "column only was renamed, merged or added between the two.",
        "",
        "| stage | jobs before | jobs after | job wall s before | after | after / before | start s before | after "
        "| compute s before | after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    def cell(row, key):
        return "–" if row is None else (f"{row[key]:.0f}" if key == "jobs" else f"{row[key]:.1f}")
    names = sorted(set(b) | set(a), key=lambda n: -max(b.get(n, {}).get("s", 0.0), a.get(n, {}).get("s", 0.0)))
    for name in names:
        old, new = b.get(name), a.get(name)
        ratio = f"{new['s'] / old['s']:.2f}" if old and new and old["s"] > 0 else "–"
        lines.append(f"| {name} | {cell(old, 'jobs')} | {cell(new, 'jobs')} | {cell(old, 's')} | {cell(new, 's')} | "
                     f"{ratio} | {cell(old, 'start')} | {cell(new, 'start')} | {cell(old, 'compute')} | "
                     f"{cell(new, 'compute')} |")
    totals = [sum(p[k] for p in profile.values()) for profile in (b, a) for k in ("jobs", "s", "start", "compute")]
    lines.append(f"| **all** | {totals[0]:.0f} | {totals[4]:.0f} | {totals[1]:.1f} | {totals[5]:.1f} | "
                 f"{totals[5] / totals[1]:.2f} | {totals[2]:.1f} | {totals[6]:.1f} | {totals[3]:.1f} | {totals[7]:.1f} |")
    return [*lines, ""]


def history_section(history: Sequence[dict[str, str]]) -> list[str]:
    """The page's lines on every kept measurement, with the range of each number over them."""
    if not history:
        return []

    def span(column: str, unit: str = "") -> str:
        values = [float(r[column]) for r in history if r[column]]
        low, high = min(values), max(values)
        return f"{low:g}{unit}" if low == high else f"{low:g}-{high:g}{unit}"

    machines = {(r["cpu"], r["cores"], r["flags"]) for r in history}
    lines = [
        "## Across machines and commits",
        "",
        f"Every measurement of the default run kept in `benchmarks/default_run_history.csv` "
        f"({len(history)} on {len(machines)} machine{'s' if len(machines) > 1 else ''}): the whole run took "
        f"{span('full_wall_s', ' s')} wall, its shards {span('shards_wall_s', ' s')} (ratio {span('ratio')}), "
        f"{span('jobs')} jobs and {span('disk_mb', ' MB')} of disk. The load average says how quiet each "
        "machine was; the commit, what was measured.",
        "",
        "| commit | date (UTC) | CPU | cores | vector extensions | load before; after | shards s | whole run s "
        "| ratio | jobs | disk MB | source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in history:
        commit_cell = f"`{r['commit']}`" if re.fullmatch(r"[0-9a-f]{7,40}(\+changes)?", r["commit"]) else r["commit"]
        lines.append(f"| {commit_cell} | {r['date']} | {r['cpu']} | {r['cores']} | {r['flags']} | "
                     f"{r['load_before'] or '?'}; {r['load_after'] or '?'} | {r['shards_wall_s']} | "
                     f"{r['full_wall_s']} | {r['ratio']} | {r['jobs']} | {r['disk_mb'] or '?'} | {r['source']} |")
    return [*lines, ""]


def page(info: dict, shards: dict, full: dict, stages: dict, args: argparse.Namespace,
         history: Sequence[dict[str, str]] = (), before: tuple[dict[str, str], dict] | None = None) -> str:
    """The generated Markdown page."""
    ratio = full["wall_s"] / shards["wall_s"]
    argv = " ".join(["python benchmarks/default_run.py", *sys.argv[1:]])
    lines = [
        f"<!-- generated by {argv}; do not edit -->",
        "",
        "# The default run, measured",
        "",
        "How long the default run takes from an empty run folder, on the machine below: written by "
        "`python benchmarks/default_run.py` (its docstring says what each number is). Other work on "
        "the machine while it ran changes every number; the load average before and after says how "
        "quiet it was.",
        "",
        "| where and when | |",
        "|---|---|",
        f"| commit | `{info['commit']}` |",
        f"| date (UTC) | {info['date']} |",
        f"| CPU | {info['cpu']} |",
        f"| cores | {info['cores']}; the builds ran with `--cores {args.cores}` |",
        f"| vector extensions | {info['flags']} |",
        f"| system | {info['system']} |",
        f"| load average (1, 5, 15 min) | before {info['load_before']}; after {info['load_after']} |",
        f"| weights | {'prepared by the run (resources/ empty)' if args.empty_resources else 'already under resources/'} |",
        f"| receptive fields (the `layers` job) | {info['fields']} |",
        f"| extra config | {', '.join(f'`{c}`' for c in args.configfile) or 'none (config/config.yaml)'} |",
        f"| a snakemake call's start (`snakemake --version`, part of both builds) | {info['snakemake_start_s']:.1f} s |",
        "",
        "| build, from an empty `results/<run>` | wall s | CPU s (user + system) | largest process's peak RSS MB |"
        " jobs | disk MB |",
        "|---|---|---|---|---|---|",
        f"| the shards only: `{shards['command']}` | {shards['wall_s']:.0f} | {shards['cpu_s']:.0f} | "
        f"{shards['max_rss_mb']:.0f} | {shards['jobs']} | |",
        f"| the whole run: `{full['command']}` | {full['wall_s']:.0f} | {full['cpu_s']:.0f} | "
        f"{full['max_rss_mb']:.0f} | {full['jobs']} | {full['disk_mb']:.0f} |",
        "",
        f"**Ratio** (whole run's wall over the shards'): **{ratio:.2f}**.",
        "",
        *([f"First results: `summary.csv` and Figs. 1-3 were written {full['first_results_s']:.0f} s after the "
           f"whole run started ({full['first_results_s'] / shards['wall_s']:.2f} x the shards' wall time); the "
           "rest of the run is the ICA, the gallery and the figures drawn from them.", ""]
          if full.get("first_results_s") is not None else []),
        "Per stage, the jobs' wall seconds from Snakemake's benchmark files, and how they split "
        "(each job's log ends with its phases: `start` = interpreter, Snakemake's script preamble "
        "and imports; `read` and `write` = time in the package's readers and writers; `compute` = "
        "the rest; `outside the script` = the job's wall time before the script's process started "
        "and after it ended, Snakemake's own work). Jobs run side by side, so the sum exceeds the "
        "run's wall time.",
        "",
        "| stage | jobs | job wall s | start s | read s | compute s | write s | outside the script s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = {"jobs": 0, "s": 0.0, **dict.fromkeys(PHASES, 0.0)}
    for name, row in sorted(stages.items(), key=lambda item: -item[1]["s"]):
        logged = row["logged"] == row["jobs"]
        outside = row["s"] - sum(row[p] for p in PHASES)
        split = [f"{row[p]:.1f}" for p in PHASES] + [f"{outside:.1f}"] if logged else ["–"] * (len(PHASES) + 1)
        lines.append(f"| {name} | {row['jobs']} | {row['s']:.1f} | " + " | ".join(split) + " |")
        for key in total:
            total[key] += row[key] if row["logged"] == row["jobs"] or key in ("jobs", "s") else 0.0
    lines.append(f"| **all** | {total['jobs']} | {total['s']:.1f} | "
                 + " | ".join(f"{total[p]:.1f}" for p in PHASES) + " | |")
    lines += ["", "Jobs without a benchmark file (a few small ones) are counted in the jobs column of the "
              "builds, not here; a stage whose logs hold no phases shows –.", ""]
    if before is not None:
        lines += side_by_side(before, ({"commit": info["commit"], "date": info["date"], "cpu": info["cpu"]}, stages))
    lines += history_section(history)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="bench", help="run name (results/<run> must not exist, or --replace)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--configfile", nargs="*", default=[], help="config files over config/config.yaml")
    parser.add_argument("--empty-resources", action="store_true",
                        help="move resources/ aside first (the run prepares the weights), and back after")
    parser.add_argument("--replace", action="store_true", help="delete an existing results/<run> first")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--before", metavar="COMMIT",
                        help="set the stage profile kept for COMMIT (benchmarks/default_run_stages.csv) beside this one")
    args = parser.parse_args(argv)
    before = read_stages(args.before) if args.before else None

    out = REPO / "results" / args.run
    if out.exists() and not args.replace:
        parser.error(f"{out} exists: give another --run, or --replace to delete it")
    configs = [yaml.safe_load((REPO / "config" / "config.yaml").read_text())]
    configs += [yaml.safe_load(Path(c).read_text()) or {} for c in args.configfile]
    n_shards = next(c["extraction"]["shards"] for c in reversed(configs) if "shards" in c.get("extraction", {}))
    shard_targets = [f"results/{args.run}/activations/shard-{i:03d}.zarr" for i in range(n_shards)]

    info = {"commit": commit(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), **machine(),
            "load_before": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
            "snakemake_start_s": snakemake_start_seconds()}
    aside = REPO / "resources.default-run-aside"
    # both builds start from the same resources/: a layer table one of them keeps is removed after it
    kept_dir = REPO / CACHE_DIR
    kept_before = set(kept_dir.glob("*")) if kept_dir.is_dir() else set()
    builds = {}
    for name, targets in (("shards", shard_targets), ("full", [])):
        shutil.rmtree(out, ignore_errors=True)
        if args.empty_resources and (REPO / "resources").exists():
            (REPO / "resources").rename(aside)
        try:
            builds[name] = snakemake_build(targets, args.cores, args.run, args.configfile)
        finally:
            if args.empty_resources and aside.exists():
                shutil.rmtree(REPO / "resources", ignore_errors=True)  # what this build prepared
                aside.rename(REPO / "resources")
        for path in set(kept_dir.glob("*")) - kept_before if kept_dir.is_dir() else ():
            path.unlink()
        print(f"{name}: {builds[name]['wall_s']:.1f} s wall", file=sys.stderr)
    info["load_after"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    builds["full"]["disk_mb"] = disk_mb(out)
    builds["full"]["first_results_s"] = first_results_s(out, builds["full"]["started_at"])
    layers_log = out / "logs" / "layers.log"
    info["fields"] = ("copied from a table an earlier run kept (resources/layer_geometry)"
                      if layers_log.is_file() and "measured by an earlier run" in layers_log.read_text()
                      else "measured")
    history = read_history()
    if not args.configfile and args.out == DEFAULT_OUT:  # the default run itself: kept
        history.append(history_row(info, builds["shards"], builds["full"]))
        append_history(history[-1])
    stages = stage_table(out)
    if not args.configfile and args.out == DEFAULT_OUT:
        append_stages(stage_rows(info, stages))
    text = page(info, builds["shards"], builds["full"], stages, args, history, before)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
