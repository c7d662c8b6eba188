"""A job that runs no network imports no torch, and the encode jobs that test nothing import no
scipy.stats (issue 30: a job's start, interpreter and imports, is most of a per-layer job's time)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
#: The scripts whose job runs a network (or reads a checkpoint): they need torch.
NETWORK_SCRIPTS = {"extract.py", "layers.py", "weights.py"}
#: Scripts whose function needs no statistics: scipy.stats stays unimported.
NO_STATS_SCRIPTS = {"encode_topk.py", "encode_null_summary.py",
                    "encode_similarity_summary.py", "encode_all_layers.py", "skipped_images.py", "patches.py",
                    "probes.py", "dataset.py", "figure.py", "gallery_layer.py", "gallery_index.py", "ica.py"}
HEAVY = ("torch", "torchvision", "scipy.stats", "sklearn", "matplotlib")


def script_imports(script: Path) -> str:
    """The module-level import statements of a workflow script, as one line of code."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    return "; ".join(ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))


def imported_heavy_modules(code: str) -> list[str]:
    """Which of :data:`HEAVY` a fresh interpreter holds after running ``code``."""
    probe = f"import sys, json; {code}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_probe_sees_a_heavy_import():
    assert "torch" in imported_heavy_modules("import neurofacets.extract")
    assert "scipy.stats" in imported_heavy_modules("from scipy import stats")


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py") if p.name not in NETWORK_SCRIPTS))
def test_a_job_without_a_network_imports_no_torch(script):
    heavy = imported_heavy_modules(script_imports(SCRIPTS / script))
    assert "torch" not in heavy and "torchvision" not in heavy, f"{script} imports {heavy}"
    if script in NO_STATS_SCRIPTS:
        assert "scipy.stats" not in heavy and "sklearn" not in heavy, f"{script} imports {heavy}"
