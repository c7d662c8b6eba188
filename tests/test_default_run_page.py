"""The default-run page's history: every kept measurement, and the range stated over them."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("default_run", REPO / "benchmarks" / "default_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_measurement_is_kept_and_the_page_states_the_range_over_all(tmp_path):
    d = load_script()
    history = tmp_path / "history.csv"
    info = {"commit": "abc1234", "date": "2026-12-08 00:00", "cpu": "CPU A", "cores": "2 usable of 2",
            "flags": "avx2", "load_before": "0.1, 0.2, 0.3", "load_after": "0.4, 0.5, 0.6"}
    d.append_history(d.history_row(info, {"wall_s": 80.4}, {"wall_s": 600.0, "cpu_s": 1000.0, "max_rss_mb": 2000.0,
                                                             "jobs": 150, "disk_mb": 430.0}), history)
    d.append_history(d.history_row({**info, "commit": "def5678", "cpu": "CPU B"}, {"wall_s": 100.0},
                                   {"wall_s": 250.0, "cpu_s": 400.0, "max_rss_mb": 2100.0, "jobs": 156,
                                    "disk_mb": 436.0}), history)
    rows = d.read_history(history)
    assert [r["commit"] for r in rows] == ["abc1234", "def5678"]
    assert rows[0]["ratio"] == "7.46" and rows[1]["ratio"] == "2.50"
    text = "\n".join(d.history_section(rows))
    assert "(2 on 2 machines)" in text
    assert "250-600 s wall" in text and "its shards 80-100 s" in text and "(ratio 2.5-7.46)" in text
    assert "| `abc1234` |" in text and "| `def5678` |" in text


def test_the_committed_page_carries_the_kept_history():
    d = load_script()
    rows = d.read_history()
    assert rows, "benchmarks/default_run_history.csv holds no measurement"
    page = (REPO / "docs" / "benchmarks" / "default_run.md").read_text(encoding="utf-8")
    assert "\n".join(d.history_section(rows)) in page


def test_stage_profiles_are_kept_and_set_side_by_side(tmp_path):
    d = load_script()
    path = tmp_path / "stages.csv"
    row = {"jobs": 13, "s": 200.0, "start": 20.0, "read": 1.0, "compute": 170.0, "write": 0.0, "logged": 13}
    d.append_stages(d.stage_rows({"commit": "aaaaaaa", "date": "2026-12-08 01:00", "cpu": "CPU"},
                                 {"ica": row, "encode_null": {**row, "s": 10.0}}), path)
    d.append_stages(d.stage_rows({"commit": "bbbbbbb", "date": "2026-12-08 02:00", "cpu": "CPU"},
                                 {"ica": {**row, "s": 50.0}, "encode_statistics": {**row, "s": 5.0}}), path)
    before, after = d.read_stages("aaaa", path), d.read_stages("bbbbbbb", path)
    assert before[1]["ica"]["s"] == 200.0 and set(after[1]) == {"ica", "encode_statistics"}
    text = "\n".join(d.side_by_side(before, after))
    assert "| ica | 13 | 13 | 200.0 | 50.0 | 0.25 |" in text
    assert "| encode_null | 13 | – | 10.0 | – | – |" in text  # a stage in one profile only
    assert "| **all** | 26 | 26 | 210.0 | 55.0 | 0.26 |" in text


def test_the_kept_stage_profiles_name_their_commit():
    d = load_script()
    info, stages = d.read_stages("7e386c7")
    assert info["commit"] == "7e386c7" and stages["ica"]["jobs"] == 13


def test_first_results_wait_for_the_summary_and_figures_1_to_3(tmp_path):
    import os

    d = load_script()
    (tmp_path / "figures").mkdir()
    files = {"summary.csv": 110.0, "figures/fig1_sparsity_flatness.png": 120.0, "figures/fig2_mf_distribution.png": 130.0}
    for name, mtime in files.items():
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (mtime, mtime))
    assert d.first_results_s(tmp_path, 100.0) is None  # Fig. 3 not written yet
    (tmp_path / "figures/fig3_mf_sf_counts.pdf").write_text("x")
    os.utime(tmp_path / "figures/fig3_mf_sf_counts.pdf", (125.0, 125.0))
    assert d.first_results_s(tmp_path, 100.0) == 30.0
