"""The package works installed from its wheel, away from the repository layout.

The configuration schema is package data (``neurofacets/config_schema.yaml``): a wheel built
from the checkout and installed into a fresh virtual environment reads its defaults from the
copy inside the environment, run from a folder that is not the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from neurofacets.config import load_schema, schema_default

READ_DEFAULTS = """
import json, neurofacets, neurofacets.config as config
print(json.dumps({"package": neurofacets.__file__, "schema": str(config.SCHEMA_PATH),
                  "prefix_tokens": config.schema_default("model.prefix_tokens"),
                  "permutations": config.schema_default("evaluation.permutations")}))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtual environment holding the wheel built from this checkout (its dependencies
    come from the interpreter running the tests: --system-site-packages, no downloads)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools leaves a build/ folder beside the pyproject.toml it builds
    source = tmp / "checkout"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{built.stderr[-3000:]}")
    [wheel] = (tmp / "dist").glob("neurofacets-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp / "venv")], check=True,
                   timeout=300)
    python = tmp / "venv" / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return tmp


def test_the_installed_wheel_reads_its_schema_defaults(venv):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(venv / "venv" / "bin" / "python"), "-c", READ_DEFAULTS], cwd=venv,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    # the wheel's own copy, not the checkout's (the editable install stays behind it on sys.path)
    assert Path(found["package"]).is_relative_to(venv / "venv"), found
    assert Path(found["schema"]).is_relative_to(venv / "venv") and Path(found["schema"]).is_file(), found
    schema = load_schema(REPO / "src" / "neurofacets" / "config_schema.yaml")
    evaluation = schema["properties"]["evaluation"]["properties"]
    assert found["permutations"] == schema_default("evaluation.permutations") == evaluation["permutations"]["default"]
    assert found["prefix_tokens"] == schema_default("model.prefix_tokens") == "exclude"
