"""The shapes other servers speak, checked against their published examples: TEI's ``/predict``
(a text, a pair, a batch; the task from the path, a header, or the one classification task),
the Open Inference Protocol v2 (KServe's Hugging Face example request, health, metadata, ``id``
echoed, errors as ``{"error"}``), and one input fanned out to several tasks."""

from __future__ import annotations

import shutil

from tests.serving.http.conftest import running


def _ranked(predictions: list[dict]) -> bool:
    scores = [p["score"] for p in predictions]
    return all(set(p) == {"label", "score"} for p in predictions) and scores == sorted(scores, reverse=True)


def test_tei_predict_shapes(masks, client):
    with running(paths=[str(masks)], watch_seconds=0) as (url, state):
        labels = set(state.model.task("keywords").labels)
        # only one classification task is served (conll03 tags): TEI's plain /predict finds it
        single = client.post(f"{url}/predict", json={"inputs": "alpha beta"})
        assert single.status_code == 200 and _ranked(single.json()) and {p["label"] for p in single.json()} == labels
        assert "x-total-time" in single.headers
        pair = client.post(f"{url}/predict", json={"inputs": ["alpha", "beta"]}).json()  # one [text, pair]
        assert isinstance(pair[0], dict) and _ranked(pair)
        batch = client.post(
            f"{url}/keywords/predict", json={"inputs": [["alpha"], ["beta", "gamma"]], "truncate": True}
        ).json()
        assert len(batch) == 2 and all(_ranked(b) for b in batch)
        by_header = client.post(
            f"{url}/predict", json={"inputs": "alpha beta"}, headers={"X-Maskctl-Task": "keywords"}
        ).json()
        assert [p["label"] for p in by_header] == [p["label"] for p in single.json()]  # the same task
        assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(by_header, single.json()))
        v1 = client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha beta"]}).json()
        assert v1["predictions"][0]["label"] == single.json()[0]["label"]

        for body, path, status in (
            ({"inputs": "x", "raw_scores": True}, "/predict", 400),
            ({"inputs": "x"}, "/conll03/predict", 400),  # a tagging task
            ({"inputs": "x"}, "/nothing/predict", 404),
            ({"inputs": [["a", "b", "c"]]}, "/predict", 400),
            ({"wrong": 1}, "/predict", 400),
        ):
            got = client.post(f"{url}{path}", json=body)
            assert got.status_code == status, (body, path, got.text)
            assert set(got.json()) == {"error", "error_type"} and isinstance(got.json()["error"], str)


def test_tei_predict_needs_a_task_when_several_classify(masks, three_tasks, tmp_path, client):
    _paths, _ = three_tasks
    folder = tmp_path / "two"
    folder.mkdir()
    shutil.copy(masks / "keywords.bundle", folder / "keywords.bundle")
    with running(paths=[str(folder)], watch_seconds=0) as (url, state):
        assert client.post(f"{url}/predict", json={"inputs": "x"}).status_code == 200
        state.folder.draining.add("keywords")  # no classification task left to choose
        got = client.post(f"{url}/predict", json={"inputs": "x"})
        assert got.status_code == 400 and "X-Maskctl-Task".lower() in got.json()["error"].lower()


def test_open_inference_protocol(masks, three_tasks, client):
    paths, _ = three_tasks
    shutil.copy(paths["swag"], masks / "swag.bundle")
    with running(paths=[str(masks)], watch_seconds=0) as (url, state):
        assert client.get(f"{url}/v2/health/live").json() == {"live": True}
        assert client.get(f"{url}/v2/health/ready").json() == {"ready": True}
        assert client.get(f"{url}/v2").json()["name"] == "maskctl"
        meta = client.get(f"{url}/v2/models/keywords").json()
        assert meta["name"] == "keywords" and [i["name"] for i in meta["inputs"]] == ["text", "text_pair"]
        assert {"label", "score", "probabilities"} <= {o["name"] for o in meta["outputs"]}
        assert client.get(f"{url}/v2/models/keywords/ready").json() == {"name": "keywords", "ready": True}

        # KServe's Hugging Face text-classification example, as published (one BYTES tensor)
        kserve = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2],
                    "datatype": "BYTES",
                    "data": ["Hello, my dog is cute", "I am feeling sad"],
                }
            ]
        }
        got = client.post(f"{url}/v2/models/keywords/infer", json={"id": "42", **kserve})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["id"] == "42" and body["model_name"] == "keywords"
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["shape"] == [2]
        assert set(outputs["label"]["data"]) <= set(state.model.task("keywords").labels)
        assert outputs["score"]["datatype"] == "FP32" and all(0 <= s <= 1 for s in outputs["score"]["data"])
        only = client.post(f"{url}/v2/models/keywords/infer", json={**kserve, "outputs": [{"name": "label"}]}).json()
        assert [o["name"] for o in only["outputs"]] == ["label"] and only["id"] is None

        swag = {
            "inputs": [
                {"name": "context", "shape": [1], "datatype": "BYTES", "data": ["a day"]},
                {"name": "endings", "shape": [1, 4], "datatype": "BYTES", "data": [["nice", "sad", "long", "short"]]},
            ]
        }
        choice = {o["name"]: o for o in client.post(f"{url}/v2/models/swag/infer", json=swag).json()["outputs"]}
        assert choice["choice"]["datatype"] == "INT64" and choice["choice"]["data"][0] in range(4)
        tags = client.post(
            f"{url}/v2/models/conll03/infer",
            json={"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["John lives in Paris"]}]},
        ).json()
        assert {o["name"] for o in tags["outputs"]} >= {"tokens", "tags", "entities"}

        text = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}
        for path, body, status in (
            ("/v2/models/nothing/infer", kserve, 404),
            ("/v2/models/keywords/infer", {"inputs": [{**kserve["inputs"][0], "shape": [3]}]}, 400),
            ("/v2/models/keywords/infer", {"inputs": [{**kserve["inputs"][0], "datatype": "FP32"}]}, 400),
            ("/v2/models/keywords/infer", {"inputs": []}, 400),
            # the spec's 400s: an input twice, an output nobody declared, another rank
            ("/v2/models/keywords/infer", {"inputs": [text, {**text, "data": ["b"]}]}, 400),
            ("/v2/models/keywords/infer", {"inputs": [text], "outputs": [{"name": "nope"}]}, 400),
            ("/v2/models/keywords/infer", {"inputs": [{**text, "shape": [1, 2], "data": [["a", "b"]]}]}, 400),
            (
                "/v2/models/swag/infer",
                {
                    "inputs": [
                        {**text, "name": "context"},
                        {**text, "name": "endings", "shape": [4], "data": ["a", "b", "c", "d"]},
                    ]
                },
                400,
            ),
        ):
            got = client.post(f"{url}{path}", json=body)
            assert got.status_code == status and set(got.json()) == {"error"}, (path, got.text)
        assert client.get(f"{url}/v2/models/nothing/ready").status_code == 404


def test_one_input_fanned_out_to_several_tasks_is_one_batch(masks, client):
    with running(paths=[str(masks)], watch_seconds=0, max_wait_ms=0) as (url, _state):
        body = {
            "requests": [
                {"tasks": ["keywords", "conll03"], "input": "alpha beta gamma"},
                {"task": "keywords", "input": "beta"},
            ]
        }
        got = client.post(f"{url}/v1/predict", json=body)
        assert got.status_code == 200, got.text
        results = got.json()["results"]
        assert [r["task"] for r in results] == ["keywords", "conll03", "keywords"]
        assert "label" in results[0]["prediction"] and "tags" in results[1]["prediction"]
        batches = [
            line
            for line in client.get(f"{url}/metrics").text.splitlines()
            if line.startswith("maskctl_batch_inputs_count")
        ]
        assert float(batches[0].split()[-1]) == 1.0  # three results, one batch
        for bad in ({"task": "keywords", "tasks": ["conll03"], "input": "a"}, {"input": "a"}):
            assert client.post(f"{url}/v1/predict", json={"requests": [bad]}).status_code == 400
