"""Overload and changes, as a client sees them: inputs per request and requests at once are
bounded (413, 429 with Retry-After, counted), answers carry TEI's timing headers, a served
bundle overwritten with a corrupt file keeps its last good version serving (no request fails),
a good new version is swapped in, --pin and --cache-mb are deprecated, and SIGTERM with a stalled upload
exits 0 after ``--drain-seconds``."""

from __future__ import annotations

import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.serving.http.conftest import running, serve_process
from tests.serving.http.test_bad_requests import _error


def _wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_inputs_per_request_are_bounded_with_the_limit_named(masks, client):
    with running(paths=[str(masks)], watch_seconds=0, max_client_batch_size=3) as (url, _):
        err = _error(client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["a"] * 4}), 413)
        assert "at most 3" in err["message"] and "--max-client-batch-size" in err["fix"]
        fanned = {"requests": [{"tasks": ["keywords", "conll03"], "input": "a b"}] * 2}  # 4 inputs once fanned out
        _error(client.post(f"{url}/v1/predict", json=fanned), 413)
        ok = client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["a"] * 3})
        assert ok.status_code == 200
        assert {"x-queue-time", "x-inference-time", "x-total-time"} <= set(ok.headers)
        assert float(ok.headers["x-total-time"]) >= float(ok.headers["x-inference-time"]) > 0
        assert 'maskctl_rejected_requests_total{reason="too_many_inputs"} 2.0' in client.get(f"{url}/metrics").text


def test_requests_beyond_the_concurrency_bound_get_429_with_retry_after(masks, client):
    # the first request waits 2 s in the batcher for company: the second finds the bound reached
    with running(paths=[str(masks)], watch_seconds=0, max_concurrent_requests=1, max_wait_ms=2000, max_batch=64) as (
        url,
        state,
    ):
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha"]})
            _wait_for(lambda: state.answers.in_flight == 1)
            with httpx.Client(timeout=10) as other:
                second = other.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["beta"]})
                assert _error(second, 429)["fix"].startswith("retry after")
                assert second.headers["retry-after"] == "1"
                assert other.get(f"{url}/health").status_code == 200  # probes are not counted
            assert first.result().status_code == 200
        assert client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["beta"]}).status_code == 200
        assert 'maskctl_rejected_requests_total{reason="overloaded"} 1.0' in client.get(f"{url}/metrics").text


def test_a_corrupt_overwrite_keeps_the_last_good_version_serving(masks, tiny_bert, keyword_task, tmp_path, client):
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    newer = tmp_path / "newer.bundle"  # a second good version of the same task
    train(TrainArgs(model=str(tiny_bert), task=str(keyword_task), output=str(newer), max_steps=1, seed=7))
    with running(paths=[str(masks)], watch_seconds=0.05) as (url, state):
        failures, answered, done = [], [0], threading.Event()

        def traffic() -> None:
            with httpx.Client(timeout=60) as c:
                while not done.is_set():
                    r = c.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha beta"]})
                    answered[0] += 1
                    if r.status_code != 200:
                        failures.append(r.text)

        threads = [threading.Thread(target=traffic) for _ in range(2)]
        for t in threads:
            t.start()

        def keywords() -> dict:
            return client.get(f"{url}/v1/tasks/keywords").json()

        (masks / "keywords.bundle").write_bytes(b"\x00" * 1000)  # in place, corrupt
        _wait_for(lambda: "reload_error" in keywords())
        assert "keywords.bundle" in keywords()["reload_error"] and "/" not in keywords()["reload_error"]
        seen = answered[0]
        _wait_for(lambda: answered[0] > seen + 5)  # and it goes on answering
        loads = len(state.model.load_seconds)
        shutil.copy(newer, masks / "keywords.bundle")  # a good new version: swapped in
        _wait_for(lambda: len(state.model.load_seconds) > loads and "reload_error" not in keywords())
        seen = answered[0]
        _wait_for(lambda: answered[0] > seen + 5)
        done.set()
        for t in threads:
            t.join()
        assert failures == []
        assert state.model.tasks.count("keywords") == 1 and state.folder.loaded  # one version held
        text = client.get(f"{url}/metrics").text
        assert 'maskctl_bundle_events_total{event="reload_failed"} 1.0' in text
        assert 'maskctl_bundle_events_total{event="reloaded"} 1.0' in text


def test_pin_and_cache_mb_are_deprecated_and_change_nothing(masks, client, caplog):
    """Every task is held hot as its flips: --pin and --cache-mb still parse, say they are
    deprecated (and when they go), and every task answers as before."""
    with running(paths=[str(masks)], watch_seconds=0, cache_mb=1.0, pin=["keywords"], max_wait_ms=0) as (url, _state):
        assert client.get(f"{url}/v1/tasks/keywords").json()["pinned"] is True
        for task, text in (("conll03", "a b"), ("keywords", "alpha"), ("conll03", "c d")):
            body = {"requests": [{"task": task, "input": text}, {"task": task, "input": text + " e"}]}
            assert client.post(f"{url}/v1/predict", json=body).status_code == 200
    warned = [r.getMessage() for r in caplog.records if "deprecated since maskctl 0.2.0" in r.getMessage()]
    assert any("--pin" in w for w in warned) and any("--cache-mb" in w for w in warned)
    assert all("removed in 0.3.0" in w for w in warned)


def test_sigterm_with_a_stalled_upload_exits_0_after_the_drain(masks, tmp_path):
    with serve_process(masks, "--drain-seconds", "1", "--watch-seconds", "0") as (proc, url):
        _wait_for(lambda: _ready(url) or proc.poll() is not None, 90)
        assert proc.poll() is None, proc.stderr.read()
        stalled = socket.create_connection(("127.0.0.1", httpx.URL(url).port))
        stalled.sendall(
            b"POST /v1/tasks/keywords/predict HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"inputs": ['
        )
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0  # uvicorn alone would wait for the upload (up to 60 s, killed at 30)
        stalled.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
