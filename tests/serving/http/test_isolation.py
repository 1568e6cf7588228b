"""One client's bad input, header or file never fails another client's request: inputs the
tokenizer rejects fail alone (even inside a shared batch), every bad bundle in the folder is
refused once at start whatever it sorts as, and the small HTTP rules (HEAD, header bound, the
Bearer scheme in any case, a body sent without a JSON content type) answer as HTTP says."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serving.http.conftest import running
from tests.serving.http.test_bad_requests import _error


def _post(url: str, path: str, **kwargs) -> httpx.Response:
    with httpx.Client(timeout=60) as c:
        return c.post(f"{url}{path}", **kwargs)


def test_inputs_the_tokenizer_rejects_get_400_and_others_200(masks, client):
    with running(paths=[str(masks)], watch_seconds=0, max_wait_ms=300, max_batch=64) as (url, _):
        bad = [
            {"json": {"inputs": [{"text": "a", "text_pair": 5}]}},
            {"content": b'{"inputs": ["ok", "\\ud800 lone"]}', "headers": {"content-type": "application/json"}},
            {
                "content": b'{"requests": [{"task": "conll03", "input": ["a", "\\udfff"]}]}',
                "headers": {"content-type": "application/json"},
                "path": "/v1/predict",
            },
        ]
        good = [{"json": {"inputs": [f"alpha beta {i}"]}} for i in range(5)]
        jobs = [(r.pop("path", "/v1/tasks/keywords/predict"), r) for r in bad + good]
        with ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(lambda job: _post(url, job[0], **job[1]), jobs))
        assert [a.status_code for a in answers[3:]] == [200] * 5
        assert "text_pair" in _error(answers[0], 400)["message"]
        err = _error(answers[1], 400)
        assert err["message"].startswith("inputs[1]: keywords has text that is not valid Unicode")
        assert _error(answers[2], 400)["message"].startswith("requests[0].input: conll03 has text that is not valid")


def test_a_batch_that_fails_is_retried_without_the_input_at_fault(masks):
    """An input that passes every check but still breaks the encoding (here a tokenizer made to
    fail on one word) fails only its own request: the rest of its batch is answered, the same
    as alone."""
    with running(paths=[str(masks)], watch_seconds=0, max_wait_ms=400, max_batch=64) as (url, state):
        expected = state.model.predict("keywords", ["alpha beta 1"])[0].label
        tokenizers, kind = state.model._tokenizers, state.model.task("keywords").kind.name
        real = tokenizers[kind]

        class Picky:
            def __getattr__(self, name):
                return getattr(real, name)

            def __call__(self, texts, *args, **kwargs):
                if any("BOOM" in t for t in texts):
                    raise ValueError("this tokenizer refuses BOOM")
                return real(texts, *args, **kwargs)

        tokenizers[kind] = Picky()
        bodies = [
            {"inputs": ["alpha beta 1"]},
            {"inputs": ["a BOOM b"]},
            {"inputs": ["alpha beta 1", "beta"]},
            {"requests": [{"task": "conll03", "input": "a b"}, {"task": "keywords", "input": "BOOM"}]},
        ]
        paths = ["/v1/tasks/keywords/predict"] * 3 + ["/v1/predict"]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda pb: _post(url, pb[0], json=pb[1]), zip(paths, bodies)))
        tokenizers[kind] = real
        assert answers[0].status_code == 200 and answers[0].json()["predictions"][0]["label"] == expected
        err = _error(answers[1], 400)
        assert err["message"].startswith("inputs[0]: keywords cannot encode this input (ValueError: this tokenizer")
        assert answers[2].status_code == 200 and answers[2].json()["predictions"][0]["label"] == expected
        mixed = answers[3].json()["results"]
        assert "prediction" in mixed[0] and mixed[1]["error"]["code"] == 400
        batches = [line for line in client_metrics(url).splitlines() if line.startswith("maskctl_batch_inputs_count")]
        assert batches and float(batches[0].split()[-1]) < 4  # the requests did share a batch


def client_metrics(url: str) -> str:
    with httpx.Client(timeout=30) as c:
        return c.get(f"{url}/metrics").text


def test_every_bad_bundle_sorting_first_is_refused_once_at_start(masks, distil_bundle, three_tasks, caplog, client):
    shutil.copy(distil_bundle, masks / "a-distil.bundle")  # another architecture, sorting first
    (masks / "a-garbage.bundle").write_bytes(b"not a bundle")
    data = three_tasks[0]["keywords"].read_bytes()
    (masks / "a-truncated.bundle").write_bytes(data[: len(data) // 2])
    caplog.set_level(logging.INFO, logger="maskctl")
    with running(paths=[str(masks)], watch_seconds=0.05) as (url, state):
        assert sorted(state.model.tasks) == ["conll03", "keywords"]
        time.sleep(0.5)  # several scans
        for name in ("a-distil", "a-garbage", "a-truncated"):
            lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"refused bundle {name}")]
            assert len(lines) == 1, (name, lines)
        assert "not layers of model" in next(r.getMessage() for r in caplog.records if "a-distil" in r.getMessage())
        assert client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha"]}).status_code == 200


def test_admin_refusals_are_4xx_without_server_paths(masks, distil_bundle, client):
    shutil.copy(distil_bundle, masks / "other.bundle")  # task keywords, on another architecture
    (masks / "keywords.bundle").unlink()
    with running(paths=[str(masks)], watch_seconds=0, admin=True) as (url, _):
        for name in ("a\u0000.bundle", "x" * 300 + ".bundle", ""):
            _error(client.post(f"{url}/v1/admin/bundles", json={"bundle": name}), 400)
        response = client.post(f"{url}/v1/admin/bundles", json={"bundle": "other.bundle"})
        err = _error(response, 422)
        assert err["message"].startswith("other.bundle: its masked layers") and str(masks.parent) not in response.text
        assert "/tmp" not in response.text


def test_a_body_without_json_content_type_is_named(masks, client):
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):
        body = json.dumps({"inputs": ["alpha"]})
        err = _error(
            client.post(
                f"{url}/v1/tasks/keywords/predict",
                content=body,
                headers={"content-type": "application/x-www-form-urlencoded"},
            ),
            400,
        )
        assert "sent as application/x-www-form-urlencoded, not as JSON" in err["message"]
        assert "Content-Type: application/json" in err["fix"]
        err = _error(client.post(f"{url}/v1/tasks/keywords/predict", content=body), 400)  # no content type
        assert "not as JSON" in err["message"]


def test_head_works_wherever_get_does(masks, client):
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):
        for path in ("/health", "/ready", "/v1/tasks", "/v1/tasks/keywords", "/metrics", "/openapi.json"):
            got, head = client.get(f"{url}{path}"), client.head(f"{url}{path}")
            assert head.status_code == 200 and head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
        assert client.head(f"{url}/v1/tasks/nope").status_code == 404
        assert client.head(f"{url}/v1/predict").status_code == 405


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_request_headers_are_bounded(masks, client, monkeypatch, http):
    if http == "h11":  # the server without httptools: h11's own bound
        import uvicorn.protocols.http.httptools_impl as impl

        monkeypatch.delattr(impl, "HttpToolsProtocol")
    with running(paths=[str(masks)], watch_seconds=0, max_header_kb=8) as (_url, state):
        port = state.settings.port
        big = b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 12_000 + b"\r\n\r\n"
        answer = _raw(port, big)
        assert answer.startswith(b"HTTP/1.1 431") and b"--max-header-kb" in answer, answer[:200]
        # a head still arriving is refused before it is complete (never buffered whole)
        refused = _raw(port, b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 12_000)
        assert refused.startswith(b"HTTP/1.1 431" if http == "httptools" else b"HTTP/1.1 400"), refused[:200]
        ok = _raw(port, b"GET /health HTTP/1.1\r\nhost: x\r\nx-fine: " + b"a" * 4000 + b"\r\nconnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200")
        # a body in the same packet as the headers is never counted as header bytes
        body = json.dumps({"inputs": ["alpha " * 3000]}).encode()
        post = (
            b"POST /v1/tasks/keywords/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        assert _raw(port, post).startswith(b"HTTP/1.1 200")


def test_the_bearer_scheme_is_case_insensitive(masks, client):
    with running(paths=[str(masks)], watch_seconds=0, api_key="k3y") as (url, _):
        for header in ("Bearer k3y", "bearer k3y", "BEARER  k3y"):
            assert client.get(f"{url}/v1/tasks", headers={"Authorization": header}).status_code == 200, header
        for header in ("Basic k3y", "Bearer k3", "k3y", "Bearer"):
            _error(client.get(f"{url}/v1/tasks", headers={"Authorization": header}), 401)
