"""Every `snakemake` command shown on the site runs as written (issue 27).

The commands (README.md and docs/**/*.md: fenced shell blocks and inline code; the usage lines
in the comments of config/*.yaml) are parsed with Snakemake's own argument parser
(``snakemake.cli.get_argument_parser``). A command fails when the parser refuses it, or when a
target is swallowed by an option that takes several values (``--forcerun extract results/...``
reads the path as a second rule name and builds the whole default target instead).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from snakemake.cli import get_argument_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
CONFIGS = sorted([*(REPO / "config").glob("*.yaml"), *(REPO / "config" / "examples").glob("*.yaml")])

#: Options whose values are rule names.
RULE_OPTIONS = frozenset({"forcerun", "allowed_rules"})
#: Options whose values may be files of the run (they take targets or wait for files).
TARGET_OPTIONS = frozenset({"until", "omit_from", "prioritize", "wait_for_files"})
#: The shipped configs whose dataset root is a placeholder a command must replace.
PLACEHOLDER_ROOTS = {
    str(path.relative_to(REPO)): root for path in CONFIGS
    if str(root := ((yaml.safe_load(path.read_text(encoding="utf-8")).get("dataset") or {}).get("root") or "")
           ).startswith("/path/to/")
}
RULE_NAME = re.compile(r"^([A-Za-z_]\w*|<[^<>]+>)$")  # a rule, or a placeholder such as <rule>
CONFIG_ITEM = re.compile(r"^[A-Za-z_][\w.-]*=")
OUTPUT_PATH = re.compile(r"^(results|resources)/|\.(zarr|csv|pdf|png|html|pt|tsv|log)$")
SHELL_BLOCK = re.compile(r"^```(?:bash|console|sh|shell)\s*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(snakemake [^`]+)`")


def _joined(lines: list[str]) -> Iterator[str]:
    """Lines with their backslash continuations joined."""
    current = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        yield current + line
        current = ""
    if current:
        yield current


def site_commands() -> list[tuple[str, str]]:
    """``(where, command)`` of every snakemake command the site and the shipped configs show."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        where = str(page.relative_to(REPO))
        for block in SHELL_BLOCK.findall(text):
            for line in _joined(block.splitlines()):
                line = line.strip().removeprefix("$ ")
                if re.match(r"^(nice\s+)?snakemake\s", line):
                    found.append((where, line))
        for span in INLINE.findall(text.replace("\n", " ")):
            found.append((where, span))
    for config in CONFIGS:
        comments = [line.lstrip("#").strip() for line in config.read_text(encoding="utf-8").splitlines()
                    if line.startswith("#")]
        for line in _joined(comments):
            if re.match(r"^(\w+=\S+\s+)*(nice\s+)?snakemake\s", line):  # with VAR=value prefixes
                found.append((str(config.relative_to(REPO)), line))
    return found


def snakemake_arguments(command: str) -> list[str]:
    """The words after `snakemake`, up to a shell operator or comment."""
    words = shlex.split(command, comments=True)
    words = words[words.index("snakemake") + 1:]
    for i, word in enumerate(words):
        if word in ("&&", "||", "|", ";", ">", ">>", "2>&1"):
            return words[:i]
    return words


def problems(command: str) -> list[str]:
    """What is wrong with a command as Snakemake would read it (empty: nothing)."""
    parser = get_argument_parser()
    try:
        args = parser.parse_args(snakemake_arguments(command))
    except SystemExit as error:  # argparse exits: 0 after --version or --help, which are fine
        return [] if error.code == 0 else [f"Snakemake's argument parser refuses it: {error}"]
    except Exception as error:  # Snakemake's own parsers raise
        return [f"Snakemake's argument parser refuses it: {error}"]
    found = []
    for action in parser._actions:  # argparse keeps no public list of the options
        if action.nargs not in ("+", "*") or not action.option_strings:
            continue
        values = getattr(args, action.dest, None)
        if not values or action.default is values:
            continue
        option = action.option_strings[0]
        for value in map(str, values):
            if action.dest == "configfile":
                ok = value.endswith((".yaml", ".yml", ".json"))
            elif action.dest == "config":
                ok = bool(CONFIG_ITEM.match(value))
            elif action.dest in RULE_OPTIONS:
                ok = bool(RULE_NAME.match(value))
            else:
                ok = action.dest in TARGET_OPTIONS or not OUTPUT_PATH.search(value)
            if not ok:
                found.append(f"{option} swallows {value!r} (put the targets first, or end the values with --)")
    for config in map(str, args.configfile or ()):
        if config in PLACEHOLDER_ROOTS and not any(re.match(r"dataset=.*\broot\b", item) for item in args.config or ()):
            found.append(f"{config} names the placeholder root {PLACEHOLDER_ROOTS[config]!r}: the command must give "
                         "one (--config 'dataset={\"root\": ...}')")
    return found


COMMANDS = site_commands()


def test_the_site_shows_commands():
    """The extraction finds the commands it is meant to check (a test that reads nothing passes)."""
    assert set(PLACEHOLDER_ROOTS) == {"config/imagenet-val.yaml", "config/imagenet-train.yaml",
                                      "config/controls.yaml", "config/families.yaml",
                                      *(f"config/examples/{name}.yaml" for name in
                                        ("folder", "csv", "own-model", "timm-vit", "gpu-node", "slurm"))}
    wheres = {where for where, _ in COMMANDS}
    assert len(COMMANDS) >= 30
    assert {"README.md", "docs/operations.md", "docs/troubleshooting.md", "docs/configuration.md",
            "config/imagenet-val.yaml", "config/examples/own-model.yaml"} <= wheres
    assert any("--forcerun extract" in command for _, command in COMMANDS)


@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{w}:{c[:60]}" for w, c in COMMANDS])
def test_site_command_parses_as_meant(where, command):
    assert problems(command) == [], f"{where}: {command}"


@pytest.mark.parametrize("command,expected", [
    ("snakemake --cores 2 --forcerun extract results/demo/activations/shard-000.zarr",
     "--forcerun swallows 'results/demo/activations/shard-000.zarr'"),
    ("snakemake --cores 2 --configfile my.yaml results/demo/summary.csv",
     "--configfile swallows 'results/demo/summary.csv'"),
    ("snakemake --cores 2 --config run=small results/small/summary.csv",
     "--config swallows 'results/small/summary.csv'"),
    ("snakemake --cores 2 --until encode_topk results/demo/figures/fig1.pdf", None),  # --until takes targets
    ("snakemake --cores two", "Snakemake's argument parser refuses it"),
    ("snakemake --cores 8 --configfile config/imagenet-val.yaml",
     "config/imagenet-val.yaml names the placeholder root '/path/to/imagenet/val'"),
])
def test_swallowed_targets_are_caught(command, expected):
    """The check fails on the recipes issue 27 found, and passes their fixed forms."""
    found = problems(command)
    assert (found[0].startswith(expected) if expected else found == []), found


@pytest.mark.parametrize("fixed", [
    "snakemake --cores 2 results/demo/activations/shard-000.zarr --forcerun extract",
    "snakemake --cores 2 --forcerun extract -- results/demo/activations/shard-000.zarr",
    "nice snakemake --cores 2 results/demo/summary.csv --configfile my.yaml  # a comment",
])
def test_fixed_forms_pass(fixed):
    assert problems(fixed) == []


def test_operations_page_lists_the_options_that_take_several_values():
    """docs/operations.md names exactly the options Snakemake's parser gives several values."""
    page = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = page.split("## Options that take several values", 1)[1].split("\n## ", 1)[0]
    listed = section.split("that take several values:", 1)[1]
    named = set(re.findall(r"`(--[a-z-]+)`", listed))
    multi = [a.option_strings for a in get_argument_parser()._actions if a.nargs in ("+", "*") and a.option_strings]
    assert {names[0] for names in multi} <= named <= {name for names in multi for name in names}


@pytest.mark.e2e
def test_the_one_shard_recipe_reruns_one_shard(tiny_run):
    """The troubleshooting page's recipe, on the tiny run (complete): a dry run plans the named
    shard's extract job and nothing else; the recipe as it was (target last) plans every shard."""
    page = (REPO / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    recipe = next(c for c in INLINE.findall(page.replace("\n", " ")) if "--forcerun extract" in c)
    args = [word.replace("results/demo", "results/tiny") for word in snakemake_arguments(recipe)]

    def planned(*words):
        result = subprocess.run([sys.executable, "-m", "snakemake", "-n", *words,
                                 "--configfile", "tests/configs/tiny.yaml"],
                                cwd=tiny_run, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        jobs = []
        for block in re.split(r"^(?=(?:local)?rule \w+:$)", result.stdout, flags=re.M)[1:]:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
            jobs.append((re.match(r"(?:local)?rule (\w+):", block).group(1), wildcards.group(1) if wildcards else ""))
        return jobs

    assert planned(*args) == [("extract", "shard=000")]
    old = ["--cores", "2", "--forcerun", "extract", "results/tiny/activations/shard-000.zarr"]
    jobs = planned(*old)
    assert {w for rule, w in jobs if rule == "extract"} == {"shard=000", "shard=001"}
