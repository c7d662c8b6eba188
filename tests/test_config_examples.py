"""Every file in config/examples/ parses and plans a run, as its own comment says to run it (issue 27).

Each example's header comment shows its command (`snakemake ... --configfile config/examples/x.yaml
--config 'dataset={"root": ...}'`, with a `PYTHONPATH=` prefix where the model is a module of
the user's). The test runs that command with `-n` (a dry run: the workflow is parsed, the
config validated and checked against the architecture, the DAG planned; nothing is built) on
three classes of two tiny images it writes, the root in the command replaced by theirs. Weights
are not needed to plan, so nothing is downloaded and no GPU or SLURM is needed. The pages
include these files (`--8<--`), so what the site shows is what this test plans.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import copy_workflow
from PIL import Image

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "config" / "examples"
CLASSES = ("cat", "dog", "owl")
#: Where the site includes each example (a page that shows a file must run it as written).
SHOWN_ON = {
    "folder.yaml": "docs/dataset.md", "csv.yaml": "docs/dataset.md", "own-model.yaml": "docs/models.md",
    "labnet.py": "docs/models.md", "timm-vit.yaml": "docs/models.md", "gpu-node.yaml": "docs/gpu.md",
    "slurm.yaml": "docs/slurm.md",
}


def example_command(example: Path) -> str:
    """The `snakemake` command of the example's header comment (the one naming the file)."""
    comments = [line.lstrip("#").strip() for line in example.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    commands = [line for line in comments if re.search(r"(^|\s)snakemake\s", line)
                and f"config/examples/{example.name}" in line]
    assert len(commands) == 1, f"{example.name}: its header must show one command that names it, not {commands}"
    return commands[0]


def dry_run(command: str, workdir: Path, root: Path) -> subprocess.CompletedProcess:
    """``command`` as a dry run in ``workdir``, its `dataset.root` replaced by ``root``."""
    words = shlex.split(command)
    start = words.index("snakemake")
    env = dict(os.environ)
    for assignment in words[:start]:  # VAR=value prefixes, as a shell applies them
        name, _, value = assignment.partition("=")
        env[name] = os.pathsep.join(p for p in (value, env.get(name, "")) if p) if name == "PYTHONPATH" else value
    arguments = words[start + 1:]
    i = arguments.index("--config") + 1
    assert "root" in arguments[i], f"the command gives no dataset root: {command}"
    arguments[i] = f"dataset={{\"root\": \"{root}\"}}"
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", *arguments], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The workflow and `photos/`: three classes of two 16 px images, and `val_labels.csv` listing them."""
    workdir = copy_workflow(tmp_path_factory.mktemp("examples"))
    rng = np.random.default_rng(0)
    rows = ["path,label,class_name"]
    for label, name in enumerate(CLASSES):
        (workdir / "photos" / name).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(workdir / "photos" / name / f"{i}.png")
            rows.append(f"{name}/{i}.png,{label},{name}")
    (workdir / "photos" / "val_labels.csv").write_text("\n".join(rows) + "\n")
    return workdir


def test_the_examples_are_the_ones_the_site_shows():
    """A file added to config/examples/ gets a page (and so a case below), and each page includes its files."""
    assert {p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".py")} == set(SHOWN_ON)
    for name, page in SHOWN_ON.items():
        assert f'--8<-- "config/examples/{name}"' in (REPO / page).read_text(encoding="utf-8"), (name, page)


@pytest.mark.parametrize("name", sorted(n for n in SHOWN_ON if n.endswith(".yaml")))
def test_example_plans_a_run_as_its_command_says(workdir, name):
    example = EXAMPLES / name
    config = yaml.safe_load(example.read_text(encoding="utf-8"))
    result = dry_run(example_command(example), workdir, workdir / "photos")
    said = result.stdout + result.stderr
    assert result.returncode == 0, said[-3000:]
    assert "This was a dry-run" in said
    # the run is the example's, with the jobs of a whole run planned under results/<its run>/
    assert re.search(rf"^extract\s+{(config.get('extraction') or {}).get('shards', 2)}$", said, re.M), said[-3000:]
    assert f"results/{config['run']}/summary.csv" in said
    assert "results/demo/" not in said


def test_a_broken_example_fails_its_dry_run(workdir, tmp_path):
    """The check can fail: the own-model example without its PYTHONPATH (its module is not
    importable) and the folder example with a misspelt key are refused at parse."""
    own = example_command(EXAMPLES / "own-model.yaml")
    result = dry_run(own.replace("PYTHONPATH=config/examples ", ""), workdir, workdir / "photos")
    assert result.returncode != 0
    assert "cannot import 'labnet'" in result.stdout + result.stderr
    broken = workdir / "config" / "examples" / "broken.yaml"
    broken.write_text((EXAMPLES / "folder.yaml").read_text(encoding="utf-8").replace("images_per_class:",
                                                                                      "image_per_class:"))
    try:
        command = example_command(EXAMPLES / "folder.yaml").replace("folder.yaml", "broken.yaml")
        result = dry_run(command, workdir, workdir / "photos")
    finally:
        broken.unlink()
    assert result.returncode != 0
    assert "image_per_class" in result.stdout + result.stderr
