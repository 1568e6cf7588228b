"""``bench/common.py``: a benchmark child that runs for minutes still shows a line at least every
heartbeat (issue 37, row h), and one that runs past its time is killed; the ``maskctl serve``
process every HTTP benchmark measures starts, answers and stops, or says why it did not start."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from bench import common
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train


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


def test_serve_process_is_ready_when_yielded_and_drains_on_the_way_out(tmp_path, tiny_bert, keyword_task):
    folder = tmp_path / "masks"
    folder.mkdir()
    train(TrainArgs(model=str(tiny_bert), task=str(keyword_task), output=str(folder / "keywords.bundle"), max_steps=1))
    with common.serve_process(folder, "--watch-seconds", "0", model=str(tiny_bert)) as (server, url):
        assert server.poll() is None
        answer = httpx.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha beta"]}, timeout=60)
        assert answer.status_code == 200, answer.text
    assert server.returncode == 0  # stopped by SIGTERM, drained, not killed


def test_a_server_that_cannot_start_says_why(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="did not start.*no \\*.bundle"), common.serve_process(tmp_path / "empty"):
        pass
