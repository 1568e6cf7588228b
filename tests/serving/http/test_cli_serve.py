"""`maskctl serve` as a process: it prints its URL and tasks, SIGTERM drains the requests in
flight and exits 0, and each user error is one line with exit code 2."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.serving.http.conftest import PROCESS_ENV, serve_process


def _maskctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "maskctl", *args],
        check=False,
        capture_output=True,
        text=True,
        env=PROCESS_ENV,
        timeout=120,
    )


@pytest.mark.slow
def test_sigterm_answers_requests_in_flight_then_exits_0(masks):
    with serve_process(masks, "--max-wait-ms", "1500", "--log-level", "warning") as (proc, url):
        first = proc.stdout.readline()
        assert f"on {url}" in first and "conll03, keywords" in first and "/docs" in first
        listed = httpx.get(f"{url}/v1/tasks", timeout=60)  # no --pin given: the list once was None
        assert listed.status_code == 200 and [t["name"] for t in listed.json()["tasks"]] == ["conll03", "keywords"]
        answers = []
        request = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha beta"]}, timeout=60)
            )
        )
        request.start()
        deadline = time.monotonic() + 30
        while "maskctl_queue_requests 1.0" not in httpx.get(f"{url}/metrics").text:  # it waits in the queue
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        request.join(60)
        assert answers and answers[0].status_code == 200 and answers[0].json()["predictions"][0]["label"]
        assert proc.wait(60) == 0


@pytest.mark.slow
def test_user_errors_are_one_line(masks, tmp_path):
    cases = [
        (["serve", str(tmp_path / "missing")], "does not exist"),
        (["serve", str(masks), "--host", "0.0.0.0"], "without an API key"),
        (["serve", str(tmp_path)], "holds no *.bundle file"),
        (["serve", str(masks), "--max-batch", "0"], "--max-batch 0 is out of range"),
    ]
    for args, message in cases:
        result = _maskctl(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_port_in_use_is_refused_before_any_bundle_loads(tmp_path):
    """The port is bound first (issue 37, row g): a busy one is one line naming --port and exit 2,
    before the bundle (here a file that would fail to load) is opened."""
    junk = tmp_path / "junk.bundle"
    junk.write_text("not a bundle")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _maskctl("serve", str(junk), "--port", str(port))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is in use" in lines[0] and f"--port {port + 1}" in lines[0]
    assert "junk.bundle" not in result.stderr and "Traceback" not in result.stderr
