"""The smaller edges of issue 34: an unknown or ambiguous task is answered with the served task
names on every route (the first 20 and a count); ``--cors-allow-origin`` lets a browser page in
(off by default); an empty text is a 400; a large request's tokenising runs off the event loop
(``/health`` answers meanwhile); and the served folder vanishing is one log line, not every task
unloaded in silence."""

from __future__ import annotations

import logging
import shutil
import threading
import time

import httpx
import pytest

from maskctl.errors import MaskctlError
from maskctl.serving.http.answers import named
from maskctl.serving.http.settings import ServeSettings
from tests.serving.http.conftest import running
from tests.serving.http.test_bad_requests import _error


def _wait_for(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_unknown_and_ambiguous_tasks_are_answered_with_the_served_names(masks, other_keywords, client):
    shutil.copy(other_keywords, masks / "keywords-b.bundle")
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):
        which = client.post(f"{url}/predict", json={"inputs": "alpha"})  # two classification tasks: which?
        assert which.status_code == 400 and "keywords, keywords-b" in which.json()["error"], which.text
        assert "conll03" not in which.json()["error"]  # TEI's /predict takes classification tasks only
        unknown = client.post(f"{url}/predict", json={"inputs": "alpha"}, headers={"X-Maskctl-Task": "nope"})
        assert unknown.status_code == 404 and "conll03, keywords, keywords-b" in unknown.json()["error"]
        oip = client.post(
            f"{url}/v2/models/nope/infer",
            json={"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
        )
        assert oip.status_code == 404 and "conll03, keywords, keywords-b" in oip.json()["error"]
        err = _error(client.post(f"{url}/v1/tasks/nope/predict", json={"inputs": ["a"]}), 404)
        assert err["tasks"] == ["conll03", "keywords", "keywords-b"] and "keywords-b" in err["fix"]


def test_a_long_list_of_tasks_is_cut_to_twenty_and_a_count():
    tasks = [f"t{i:02d}" for i in range(25)]
    assert named(tasks).startswith("t00, t01") and "t19 and 5 more" in named(tasks) and "t20" not in named(tasks)
    assert named(tasks[:3]) == "t00, t01, t02" and named([]) == "none"


def test_cors_is_off_unless_an_origin_is_allowed(masks, client):
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization",
    }
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):
        assert "access-control-allow-origin" not in client.options(f"{url}/predict", headers=preflight).headers
    with running(paths=[str(masks)], watch_seconds=0, api_key="k3y", cors_allow_origin=["https://app.example"]) as (
        url,
        _,
    ):
        got = client.options(f"{url}/v1/tasks/keywords/predict", headers=preflight)  # no key on a preflight
        assert got.status_code == 200 and got.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in got.headers["access-control-allow-headers"].lower()
        answer = client.post(
            f"{url}/v1/tasks/keywords/predict",
            json={"inputs": ["alpha"]},
            headers={"Origin": "https://app.example", "Authorization": "Bearer k3y"},
        )
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-total-time" in answer.headers["access-control-expose-headers"]
        other = client.options(
            f"{url}/v1/tasks/keywords/predict", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_a_cors_origin_must_be_an_origin(masks):
    assert ServeSettings(paths=[str(masks)], cors_allow_origin=["*", "http://localhost:3000"]).check()
    with pytest.raises(MaskctlError, match="is not an origin"):
        ServeSettings(paths=[str(masks)], cors_allow_origin=["app.example/path"]).check()


def test_an_empty_text_is_refused_on_every_route(masks, client):
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):
        for path, body in (
            ("/predict", {"inputs": ""}),
            ("/predict", {"inputs": [["  "]]}),
            ("/v1/tasks/keywords/predict", {"inputs": ["ok", ""]}),
            ("/v1/tasks/keywords/predict", {"inputs": [{"text": "", "text_pair": "b"}]}),
            (
                "/v2/models/keywords/infer",
                {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]}]},
            ),
        ):
            got = client.post(f"{url}{path}", json=body)
            assert got.status_code == 400 and "empty text" in got.text, (path, body, got.text)


def test_health_answers_while_a_large_request_is_tokenised(masks, monkeypatch):
    """The encoding of a 100 kB input is held here until /health has answered: had it run on
    the event loop, /health could not answer meanwhile."""
    with running(paths=[str(masks)], watch_seconds=0) as (url, state):
        entered, release = threading.Event(), threading.Event()
        real = state.model.encode

        def held(requests):
            entered.set()
            release.wait(60)
            return real(requests)

        monkeypatch.setattr(state.model, "encode", held)
        with httpx.Client(timeout=60) as big, httpx.Client(timeout=10) as probe:
            answer: list[httpx.Response] = []
            sender = threading.Thread(
                target=lambda: answer.append(
                    big.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["word " * 20_000]})
                )
            )
            sender.start()
            try:
                assert entered.wait(20)
                assert probe.get(f"{url}/health").status_code == 200
            finally:
                release.set()
                sender.join(60)
        assert answer[0].status_code == 200 and answer[0].json()["predictions"][0]["truncated"] is True


def test_the_served_folder_vanishing_is_one_log_line_and_its_tasks_keep_serving(masks, caplog, client):
    caplog.set_level(logging.INFO, logger="maskctl")
    moved = masks.with_name("masks-away")
    with running(paths=[str(masks)], watch_seconds=0.05) as (url, state):
        shutil.move(masks, moved)

        def lines(says: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if says in r.getMessage()]

        _wait_for(lambda: lines("is missing"))
        time.sleep(0.3)  # several scans
        assert len(lines("is missing")) == 1 and str(masks) in lines("is missing")[0]
        assert sorted(state.model.tasks) == ["conll03", "keywords"]
        assert client.get(f"{url}/ready").status_code == 200
        assert client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha"]}).status_code == 200
        shutil.move(moved, masks)
        _wait_for(lambda: lines("is back"))
        (masks / "conll03.bundle").unlink()  # watched again: a removed bundle is unloaded
        _wait_for(lambda: "conll03" not in state.model.tasks)
        assert len(lines("is back")) == 1 and not lines("unloading task keywords")
