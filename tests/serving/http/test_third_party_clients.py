"""Two protocols' own clients against a real server, unchanged: Triton's ``tritonclient.http``
(live, ready, model metadata, infer with BYTES inputs from numpy object arrays as binary data
and as JSON, the model version "1"; it sends no Content-Type) and Hugging Face's
``InferenceClient(model=<base url>).text_classification`` (it posts to ``/``). The spec's 400s
(an input named twice, an output nobody declared, a shape of another rank) reach the client as
its own exception. Loopback only."""

from __future__ import annotations

import shutil

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from huggingface_hub import InferenceClient
from tritonclient.utils import InferenceServerException

from tests.serving.http.conftest import running
from tests.serving.http.test_bad_requests import _error


def _texts(*texts: str) -> np.ndarray:
    return np.array(list(texts), dtype=object)


def _input(name: str, values: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(values.shape), "BYTES")
    tensor.set_data_from_numpy(values, binary_data=binary)
    return tensor


def _strings(array: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in array.reshape(-1)]


def test_tritonclient_works_unchanged(masks, three_tasks, client):
    shutil.copy(three_tasks[0]["swag"], masks / "swag.bundle")
    with running(paths=[str(masks)], watch_seconds=0) as (url, state):
        expected = client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha beta", "gamma"]}).json()
        labels = [p["label"] for p in expected["predictions"]]
        triton_client = triton.InferenceServerClient(url=url.removeprefix("http://"))
        assert triton_client.is_server_live() and triton_client.is_server_ready()
        assert triton_client.is_model_ready("keywords") and triton_client.is_model_ready("keywords", "1")
        assert not triton_client.is_model_ready("keywords", "2") and not triton_client.is_model_ready("nothing")
        meta = triton_client.get_model_metadata("keywords", "1")
        assert meta["versions"] == ["1"] and [i["name"] for i in meta["inputs"]] == ["text", "text_pair"]
        assert "binary_tensor_data" in triton_client.get_server_metadata()["extensions"]

        for binary in (True, False):  # True is the client's default
            text = _input("text", _texts("alpha beta", "gamma"), binary)
            asked = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("label", "score", "truncated")]
            result = triton_client.infer("keywords", [text], model_version="1", outputs=asked, request_id="7")
            assert _strings(result.as_numpy("label")) == labels, binary
            assert np.allclose(result.as_numpy("score"), [p["score"] for p in expected["predictions"]], atol=1e-5)
            assert result.as_numpy("truncated").tolist() == [False, False]
            assert result.get_response()["id"] == "7"
            everything = triton_client.infer("keywords", [text])  # no outputs named: all, binary by default
            assert {o["name"] for o in everything.get_response()["outputs"]} == {
                "label",
                "score",
                "probabilities",
                "truncated",
            }
            assert _strings(everything.as_numpy("label")) == labels
            pair = triton_client.infer(
                "keywords", [_input("text", _texts("alpha"), binary), _input("text_pair", _texts("beta"), binary)]
            )
            assert _strings(pair.as_numpy("label"))[0] in state.model.task("keywords").labels
            choice = triton_client.infer(
                "swag",
                [
                    _input("context", _texts("a day"), binary),
                    _input("endings", np.array([["nice", "sad", "long", "short"]], dtype=object), binary),
                ],
            )
            assert choice.as_numpy("choice").tolist()[0] in range(4)

        one = _input("text", _texts("alpha"), True)
        for inputs, outputs, says in (
            ([one, one], None, "given more than once"),
            ([one], [triton.InferRequestedOutput("nope")], "unexpected inference output"),
            ([_input("text", np.array([["a", "b"]], dtype=object), True)], None, r"declares \[-1\]"),
        ):
            with pytest.raises(InferenceServerException, match=says):
                triton_client.infer("keywords", inputs, outputs=outputs)
        with pytest.raises(InferenceServerException, match="no version '2'"):
            triton_client.infer("keywords", [one], model_version="2")
        triton_client.close()


def test_the_binary_extension_is_checked_like_any_input(masks, client):
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):
        header = (
            b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 9}}]}'
        )
        good = header + (5).to_bytes(4, "little") + b"alpha"
        got = client.post(
            f"{url}/v2/models/keywords/infer",
            content=good,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        assert got.status_code == 200 and got.json()["outputs"][0]["shape"] == [1], got.text
        for body, length, says in (
            (good + b"x", len(header), "1 bytes follow"),
            (good[:-1], len(header), "past the end"),
            (header + (9).to_bytes(4, "little") + b"alpha", len(header), "longer than"),
            (header + (5).to_bytes(4, "little") + b"\xff\xfe\xfd\xfc\xfb", len(header), "UTF-8"),
            (good, len(good) + 5, "does not fit"),
            (good, 3, "not valid JSON"),
        ):
            got = client.post(
                f"{url}/v2/models/keywords/infer",
                content=body,
                headers={"Inference-Header-Content-Length": str(length)},
            )
            assert got.status_code == 400 and says in got.json()["error"], (says, got.text)


@pytest.fixture
def loopback_hub(monkeypatch):
    """huggingface_hub's offline mode (HF_HUB_OFFLINE, set for the suite) refuses every URL, even
    a server on 127.0.0.1: lifted for the client's calls, which go to the test server only."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def test_huggingface_inference_client_works_unchanged(masks, client, loopback_hub):
    with running(paths=[str(masks)], watch_seconds=0) as (url, _state):  # one classification task: keywords
        expected = client.post(f"{url}/predict", json={"inputs": "alpha beta"}).json()
        answer = InferenceClient(model=url).text_classification("alpha beta")
        assert [(o.label, round(o.score, 5)) for o in answer] == [(p["label"], round(p["score"], 5)) for p in expected]
        assert len(InferenceClient(model=url).text_classification("alpha beta", top_k=1)) == 1
        # TEI's own shape on / and SageMaker's /invocations: as /predict answers
        for path in ("/", "/invocations"):
            assert client.post(f"{url}{path}", json={"inputs": "alpha beta"}).json() == expected
            assert client.post(f"{url}{path}", json={"inputs": [["alpha"], ["beta"]]}).status_code == 200
        got = client.post(f"{url}/", json={"inputs": "a", "parameters": {"function_to_apply": "sigmoid"}})
        assert got.status_code == 400 and "softmax" in got.json()["error"]


def test_the_protocols_health_probes_need_no_key(masks, monkeypatch, loopback_hub):
    monkeypatch.setenv("MASKCTL_API_KEY", "k3y")
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):
        triton_client = triton.InferenceServerClient(url=url.removeprefix("http://"))
        assert triton_client.is_server_live() and triton_client.is_server_ready()  # a probe sends no key
        with pytest.raises(InferenceServerException):
            triton_client.infer("keywords", [_input("text", _texts("alpha"), True)])
        keyed = triton.InferenceServerClient(url=url.removeprefix("http://"))
        result = keyed.infer(
            "keywords", [_input("text", _texts("alpha"), True)], headers={"Authorization": "Bearer k3y"}
        )
        assert len(result.as_numpy("label")) == 1
        with httpx.Client(timeout=30) as c:
            for path in ("/health", "/ready", "/v2/health/live", "/v2/health/ready"):
                assert c.get(f"{url}{path}").status_code == 200, path
            for path in ("/v2/models/keywords", "/v2/models/keywords/ready", "/v1/tasks"):
                _error(c.get(f"{url}{path}"), 401)
        assert InferenceClient(model=url, api_key="k3y").text_classification("alpha")
        triton_client.close()
        keyed.close()
