"""One small request must never hang the server, hold a slot or a batcher entry forever, or keep
it from stopping: an input tensor with no elements is answered at once, a client that goes away
frees what its request held, SIGTERM ends within ``--drain-seconds`` whatever is queued, and a
symbolic link loop, a dangling link or a file that is no file in the served folder is refused
with one log line, at start, while watching and on the admin route (4xx, never 500)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from maskctl.serving.http.batcher import Batcher
from tests.serving.http.conftest import SERVERS, running
from tests.serving.http.test_bad_requests import _error

EMPTY = {"inputs": [{"name": "text", "shape": [0], "datatype": "BYTES", "data": []}]}


def _wait_for(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Held:
    """The model's ``run`` held until ``release``: a batch that is computing for as long as the
    test wants, so what happens to requests meanwhile can be seen without timing."""

    def __init__(self, model) -> None:
        self.real, self.entered, self.release = model.run, threading.Event(), threading.Event()

    def __call__(self, encoded, batch_size=32):
        self.entered.set()
        self.release.wait(120)
        return self.real(encoded, batch_size)


def _send(port: int, body: bytes = b'{"inputs": ["alpha beta"]}') -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        b"POST /v1/tasks/keywords/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    return s


def test_an_input_with_no_elements_is_answered_at_once_and_holds_nothing(masks):
    # before: no answer ever, and the slot was never released
    with (
        running(paths=[str(masks)], watch_seconds=0, max_concurrent_requests=2) as (url, state),
        httpx.Client(timeout=10) as c,
    ):
        for _ in range(2):
            err = c.post(f"{url}/v2/models/keywords/infer", json=EMPTY)
            assert err.status_code == 400 and "no elements" in err.json()["error"], err.text
        endings = {"inputs": [{"name": "text", "shape": [0, 2], "datatype": "BYTES", "data": []}]}
        assert c.post(f"{url}/v2/models/keywords/infer", json=endings).status_code == 400
        assert state.answers.in_flight == 0 and state.batcher.waiting == 0
        assert c.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha"]}).status_code == 200


def test_the_batcher_answers_an_empty_request_without_queueing_it():
    async def main():
        batcher = Batcher(None, max_batch=8, max_wait_s=0.0, compute=ThreadPoolExecutor(1))
        batcher.start()
        results, _timing = await asyncio.wait_for(batcher.submit([]), 5)
        assert results == [] and batcher.waiting == 0
        await asyncio.wait_for(batcher.stop(), 5)

    asyncio.run(main())


def test_a_client_that_goes_away_frees_its_slot_and_its_batcher_entry(masks, monkeypatch):
    with running(paths=[str(masks)], watch_seconds=0, max_wait_ms=0, max_concurrent_requests=2) as (url, state):
        held = Held(state.model)
        monkeypatch.setattr(state.model, "run", held)
        try:
            running_one = _send(state.settings.port)
            assert held.entered.wait(20)
            queued = _send(state.settings.port)
            _wait_for(lambda: state.answers.in_flight == 2 and state.batcher.waiting == 1)
            with httpx.Client(timeout=10) as c:
                _error(c.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["a"]}), 429)
            running_one.close()
            queued.close()
            # the batch still computes (held), yet neither request holds a slot or waits in line
            _wait_for(lambda: state.answers.in_flight == 0 and state.batcher.waiting == 0)
            assert not held.release.is_set()
        finally:
            held.release.set()
        _wait_for(lambda: not state.batcher.pending)
        monkeypatch.undo()
        with httpx.Client(timeout=30) as c:
            assert c.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["a"]}).status_code == 200


def test_sigterm_ends_within_the_drain_whatever_is_queued(masks, monkeypatch):
    with running(paths=[str(masks)], watch_seconds=0, max_wait_ms=0, drain_seconds=1) as (_url, state):
        held = Held(state.model)
        monkeypatch.setattr(state.model, "run", held)
        server, thread = SERVERS[state.settings.port]
        clients = []
        try:
            clients.append(_send(state.settings.port))
            assert held.entered.wait(20)
            clients.append(_send(state.settings.port))
            _wait_for(lambda: state.batcher.waiting == 1)
            server.handle_exit(signal.SIGTERM, None)
            thread.join(20)  # before: the lifespan waited for the batcher, which waited for the batch
            assert not thread.is_alive()
        finally:
            held.release.set()
            for s in clients:
                s.close()


def _bad_entries(folder) -> list[str]:
    """A loop of two links, a link to itself, a dangling link and a FIFO, all named *.bundle."""
    os.symlink(folder / "b-loop.bundle", folder / "a-loop.bundle")
    os.symlink(folder / "a-loop.bundle", folder / "b-loop.bundle")
    os.symlink(folder / "self.bundle", folder / "self.bundle")
    os.symlink(folder / "nowhere", folder / "dangling.bundle")
    os.mkfifo(folder / "fifo.bundle")  # opening it would wait for a writer forever
    return ["a-loop", "b-loop", "self", "dangling", "fifo"]


def _refusals(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if f"{name}.bundle" in r.getMessage()]


def test_links_that_lead_nowhere_are_refused_with_one_line_at_start_and_while_watching(masks, caplog, client):
    names = _bad_entries(masks)
    caplog.set_level(logging.INFO, logger="maskctl")
    with running(paths=[str(masks)], watch_seconds=0.05) as (url, state):
        assert sorted(state.model.tasks) == ["conll03", "keywords"]
        os.symlink(masks / "z-loop.bundle", masks / "z-loop.bundle")  # added while serving
        _wait_for(lambda: _refusals(caplog, "z-loop"))
        time.sleep(0.3)  # several more scans: still one line each
        for name in names + ["z-loop"]:
            lines = _refusals(caplog, name)
            assert len(lines) == 1, (name, [r.getMessage() for r in lines])
            assert lines[0].getMessage().startswith(f"refused bundle {name}.bundle") and not lines[0].exc_info
        assert "symbolic link loop" in _refusals(caplog, "self")[0].getMessage()
        assert "link to nothing" in _refusals(caplog, "dangling")[0].getMessage()
        assert "not a regular file" in _refusals(caplog, "fifo")[0].getMessage()
        assert client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha"]}).status_code == 200


def test_the_admin_route_refuses_links_that_lead_nowhere_with_4xx(masks, client):
    _bad_entries(masks)
    with running(paths=[str(masks)], watch_seconds=0, admin=True) as (url, _):
        for name, status, says in (
            ("a-loop.bundle", 400, "symbolic link loop"),
            ("self.bundle", 400, "loop"),
            ("dangling.bundle", 404, "link to nothing"),
            ("fifo.bundle", 400, "regular file"),
        ):
            err = _error(client.post(f"{url}/v1/admin/bundles", json={"bundle": name}), status)
            assert says in err["message"] and name in err["message"], err
            assert str(masks) not in err["message"]
        assert client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha"]}).status_code == 200


def test_a_long_pair_costs_its_token_budget_on_every_route(masks, three_tasks, client):
    """2,000 words a side (a 20 kB body) grew the server by tens of MB: the tokenizer now never
    sees more than a few times max_length tokens' worth of characters of any text, on any route."""
    paths, _ = three_tasks
    shutil.copy(paths["swag"], masks / "swag.bundle")
    side = "word " * 2000
    with running(paths=[str(masks)], watch_seconds=0) as (url, state):
        bound = 16 * max(state.model.encoding(t)[1] for t in state.model.tasks)
        for kind, real in list(state.model._tokenizers.items()):
            state.model._tokenizers[kind] = Bounded(real, bound)
        oip = {
            "inputs": [
                {"name": "text", "shape": [1], "datatype": "BYTES", "data": [side]},
                {"name": "text_pair", "shape": [1], "datatype": "BYTES", "data": [side]},
            ]
        }
        swag = {"context": side, "endings": [side, "b", "c", side]}
        for path, body in (
            ("/v1/tasks/keywords/predict", {"inputs": [[side, side], {"text": side}]}),
            ("/keywords/predict", {"inputs": [side, side]}),
            ("/v2/models/keywords/infer", oip),
            ("/v1/predict", {"requests": [{"tasks": ["keywords", "conll03"], "input": side}]}),
            ("/v1/tasks/swag/predict", {"inputs": [swag]}),
        ):
            got = client.post(f"{url}{path}", json=body)
            assert got.status_code == 200, (path, got.text)
            assert '"truncated": true' in got.text or "[true]" in got.text or path == "/keywords/predict", path


class Bounded:
    """The server's tokenizer, refusing any text longer than ``bound`` characters before it
    tokenises it (the request then fails: 500)."""

    def __init__(self, real, bound: int) -> None:
        self.real, self.bound = real, bound

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __call__(self, *args, **kwargs):
        for column in args:
            for item in column if isinstance(column, list) else [column]:
                size = sum(len(w) + 1 for w in item) if isinstance(item, list) else len(item or "")
                assert size <= self.bound, f"the tokenizer was given {size:,} characters"
        return self.real(*args, **kwargs)
