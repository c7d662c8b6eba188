"""The workflow's own checks: `snakemake --lint` and `snakefmt --check` stay clean."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import REPO, copy_workflow, shipped_controls_workflow

LINT_CLEAN = "Congratulations, your workflow is in a good condition!"


def _lint(workdir, *config: str) -> subprocess.CompletedProcess:
    # --workflow-profile none: the default profile's settings are not the linter's business
    cmd = [sys.executable, "-m", "snakemake", "--lint", "--workflow-profile", "none", *config]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)


def test_lint_is_clean_on_the_default_config(tmp_path):
    result = _lint(copy_workflow(tmp_path))
    assert result.returncode == 0 and LINT_CLEAN in result.stdout + result.stderr, (
        result.stdout[-3000:] + result.stderr[-3000:])


def test_lint_is_clean_in_multi_run_mode(tmp_path):
    # config/controls.yaml: the Snakefile as a module once per run, and the comparison rules
    workdir, root = shipped_controls_workflow(tmp_path)
    result = _lint(workdir, "--configfile", "config/controls.yaml", "--config", f"dataset={{\"root\": \"{root}\"}}")
    assert result.returncode == 0 and LINT_CLEAN in result.stdout + result.stderr, (
        result.stdout[-3000:] + result.stderr[-3000:])


def test_snakefmt_check_is_clean():
    snakefmt = shutil.which("snakefmt")
    if snakefmt is None:
        pytest.fail("snakefmt is not installed: it is in the test extras (pip install -e '.[test]')")
    # the line length and directive order come from [tool.snakefmt] in pyproject.toml
    result = subprocess.run([snakefmt, "--check", "--diff", "Snakefile", "rules"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
