"""tools/diff_results.py: what counts as the same output of two runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("diff_results", REPO / "tools" / "diff_results.py")
diff_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diff_results)


def _run_folder(root: Path, created: str, value: bytes = b"\x01\x02", log: str = "") -> Path:
    (root / "topk" / "conv1_1.zarr" / "c").mkdir(parents=True)
    attrs = {"attributes": {"created": created, "patches_created": created, "config_digest": "abc"}, "zarr_format": 3}
    (root / "topk" / "conv1_1.zarr" / "zarr.json").write_text(json.dumps(attrs))
    (root / "topk" / "conv1_1.zarr" / "c" / "0").write_bytes(value)
    (root / "figures").mkdir()
    (root / "figures" / "f.pdf").write_bytes(b"%PDF /CreationDate (D:" + created.encode() + b") end")
    (root / "logs").mkdir()
    (root / "logs" / "x.log").write_text(log)
    return root


def test_only_times_and_logs_may_differ(tmp_path):
    a = _run_folder(tmp_path / "a", "2026-01-01", log="took 3 s")
    b = _run_folder(tmp_path / "b", "2026-02-02", log="took 5 s")
    assert diff_results.diff_results(a, b) == []
    assert diff_results.main([str(a), str(b)]) == 0


def test_a_changed_chunk_or_a_missing_file_is_reported(tmp_path):
    a = _run_folder(tmp_path / "a", "t")
    b = _run_folder(tmp_path / "b", "t", value=b"\x01\x03")
    assert diff_results.diff_results(a, b) == ["differs: topk/conv1_1.zarr/c/0"]
    (b / "figures" / "f.pdf").unlink()
    problems = diff_results.diff_results(a, b)
    assert any(p.startswith("only in") and p.endswith("figures/f.pdf") for p in problems)
    assert diff_results.main([str(a), str(b)]) == 1
