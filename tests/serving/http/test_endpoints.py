"""Every endpoint of `maskctl serve` on a real server: tasks, predictions equal to MaskedModel's
(one task and mixed tasks, every kind), probes, Prometheus metrics, the OpenAPI page."""

from __future__ import annotations

import dataclasses

import pytest

from maskctl.serving import MaskedModel
from tests.serving.http.conftest import running

TEXTS = ["alpha beta", "gamma delta words here", "beta beta gamma"]
WORDS = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
CHOICE = {"context": "the film", "endings": ["was good", "was bad", "ended", "began"]}


def _close(a, b):
    """Two predictions (JSON dicts) agree: same labels/tags, scores within float noise."""
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
        elif isinstance(a[key], dict) and key == "probabilities":
            assert a[key] == pytest.approx(b[key], abs=1e-5)
        elif isinstance(a[key], list) and a[key] and isinstance(a[key][0], float):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
        else:
            assert a[key] == b[key], key


def test_tasks_predictions_and_probes(masks, three_tasks, client):
    paths, _ = three_tasks
    reference = MaskedModel.from_bundles([paths["keywords"], paths["conll03"], paths["swag"]])
    with running(paths=[str(masks)], watch_seconds=0) as (url, _state):
        listed = client.get(f"{url}/v1/tasks").json()["tasks"]
        assert [t["name"] for t in listed] == ["conll03", "keywords"]  # sorted by name
        keywords = next(t for t in listed if t["name"] == "keywords")
        assert keywords["kind"] == "sequence-classification" and keywords["bundle"] == "keywords.bundle"
        assert keywords["labels"] == reference.task("keywords").labels
        assert (
            keywords["base_model"] and "score" in keywords["metrics"] and keywords["max_length"] == 64
        )  # the tiny model's 64 positions
        assert client.get(f"{url}/v1/tasks/conll03").json()["kind"] == "token-tagging"

        got = client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": TEXTS})
        assert got.status_code == 200 and got.json()["task"] == "keywords"
        expected = [dataclasses.asdict(r) for r in reference.predict("keywords", TEXTS)]
        for a, b in zip(got.json()["predictions"], expected):
            _close(a, b)

        mixed = [
            ("conll03", WORDS[0]),
            ("keywords", TEXTS[0]),
            ("conll03", {"tokens": WORDS[1]}),
            ("keywords", {"text": TEXTS[1], "text_pair": TEXTS[2]}),
            ("conll03", "EU rejects it"),
        ]
        body = {"requests": [{"task": t, "input": i} for t, i in mixed]}
        results = client.post(f"{url}/v1/predict", json=body).json()["results"]
        expected = reference.predict_many(mixed)
        assert [r["task"] for r in results] == [t for t, _ in mixed]
        for got_one, want in zip(results, expected):
            _close(got_one["prediction"], dataclasses.asdict(want))

        assert client.get(f"{url}/health").json() == {"status": "ok", "tasks": 2}
        assert client.get(f"{url}/ready").status_code == 200
        metrics = client.get(f"{url}/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert 'maskctl_http_requests_total{route="/v1/predict",status="200"} 1.0' in text
        assert 'maskctl_task_inputs_total{task="conll03"} 3.0' in text
        assert 'maskctl_task_inputs_total{task="keywords"} 5.0' in text
        assert "maskctl_batch_inputs_count" in text and "maskctl_http_request_duration_seconds_bucket" in text
        assert "maskctl_tasks_loaded 2.0" in text

        api = client.get(f"{url}/openapi.json").json()
        assert {"/v1/tasks", "/v1/tasks/{name}/predict", "/v1/predict", "/health", "/ready", "/metrics"} <= set(
            api["paths"]
        )
        assert "/v1/admin/bundles" not in api["paths"]  # admin is off unless asked
        assert client.get(f"{url}/docs").status_code == 200
    reference.close()


def test_every_kind_over_http_and_long_text_says_truncated(three_tasks, client):
    paths, _ = three_tasks
    reference = MaskedModel.from_bundles([paths["swag"]])
    with running(paths=[str(paths["swag"]), str(paths["keywords"]), str(paths["conll03"])]) as (url, _):
        got = client.post(f"{url}/v1/tasks/swag/predict", json={"inputs": [CHOICE]}).json()["predictions"][0]
        _close(got, dataclasses.asdict(reference.predict("swag", [CHOICE])[0]))
        assert got["truncated"] is False
        long = " ".join(["alpha beta gamma"] * 100)  # 300 words: past the 64 positions
        got = client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": [long, "alpha"]}).json()
        assert [p["truncated"] for p in got["predictions"]] == [True, False]
        tags = client.post(f"{url}/v1/tasks/conll03/predict", json={"inputs": [long.split()]}).json()
        tagged = tags["predictions"][0]
        assert tagged["truncated"] is True and len(tagged["tags"]) == 300 and tagged["tags"][-1] == "O"
    reference.close()
