"""A job's log ends with its wall time split into phases (neurofacets.logs.timed, log_to)."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pytest

from neurofacets import logs
from neurofacets.store import write_csv


@logs.timed("read")
def _slow_read(seconds: float) -> float:
    time.sleep(seconds)
    return _inner_read(seconds)  # nested: counted once, in the outer call


@logs.timed("read")
def _inner_read(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_the_log_ends_with_the_phases(tmp_path):
    log = tmp_path / "job.log"
    with logs.log_to(log):
        _slow_read(0.1)
        time.sleep(0.15)  # compute
        write_csv(tmp_path / "t.csv", pd.DataFrame({"a": range(10)}))
    phases = logs.read_phases(log.read_text())
    assert set(phases) == {"start", "read", "write", "compute"}
    assert 0.2 <= phases["read"] < 0.4  # both sleeps of the nested calls, once
    assert 0 < phases["write"] < 1.0
    assert 0.15 <= phases["compute"] < 0.5
    # outside a job a timed function just runs, and adds to nothing
    assert _slow_read(0.0) == 0.0


def test_a_failed_job_logs_no_phases(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(RuntimeError), logs.log_to(log):
        raise RuntimeError("boom")
    assert logs.read_phases(log.read_text()) is None
    assert "boom" in log.read_text()


def test_the_process_start_is_when_the_process_was_started():
    # independent of /proc: the parent's clock just before and after starting a child
    code = "from neurofacets.logs import process_start_time; print(repr(process_start_time()))"
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    after_spawn = time.time()
    started = eval(child.communicate()[0])  # noqa: S307 - a float or None printed by repr
    if started is None:
        pytest.skip("no /proc on this system")
    # /proc counts in 10 ms ticks; the boot time in /proc/stat (whole seconds) would miss by up to 1 s
    assert before - 0.05 <= started <= after_spawn + 0.05


def test_only_read_and_write_are_timed_phases():
    with pytest.raises(ValueError, match="phase 'compute'"):
        logs.timed("compute")
