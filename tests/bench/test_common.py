"""``bench/common.py``: a benchmark child that runs for minutes still shows a line at least every
heartbeat (issue 37, row h), and one that runs past its time is killed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import common


def _sleeper(seconds: float) -> subprocess.Popen:
    code = f"import sys, time; time.sleep({seconds}); print('done', file=sys.stderr)"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_long_child_logs_a_line_every_heartbeat(monkeypatch, capsys):
    monkeypatch.setattr(common, "HEARTBEAT_S", 0.3)
    stderr = common.wait_with_heartbeat(_sleeper(1.5), "child serving", timeout=60)
    assert stderr.strip() == "done"
    lines = [line for line in capsys.readouterr().err.splitlines() if "child serving: running for" in line]
    assert len(lines) >= 2  # ~4 heartbeats in 1.5 s of 0.3 s each


def test_a_child_past_its_time_is_killed(monkeypatch):
    monkeypatch.setattr(common, "HEARTBEAT_S", 0.2)
    proc = _sleeper(30)
    with pytest.raises(subprocess.TimeoutExpired):
        common.wait_with_heartbeat(proc, "child kernel", timeout=0.5)
    assert proc.poll() is not None  # gone, not left running
