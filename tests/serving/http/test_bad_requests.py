"""Bad requests get a status and a JSON error naming what is wrong and the fix, never a
traceback; the API key guards every endpoint but the probes; the bind rule for other hosts."""

from __future__ import annotations

import pytest

from maskctl.errors import MaskctlError
from maskctl.serving.http.settings import ServeSettings
from tests.serving.http.conftest import running


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["error"]


def test_each_bad_input_gets_its_status_and_message(masks, client):
    with running(paths=[str(masks)], watch_seconds=0, max_body_kb=4) as (url, _):
        err = _error(client.post(f"{url}/v1/tasks/nope/predict", json={"inputs": ["x"]}), 404)
        assert "nope" in err["message"] and err["tasks"] == ["conll03", "keywords"]
        err = _error(
            client.post(
                f"{url}/v1/predict",
                json={"requests": [{"task": "keywords", "input": "a"}, {"task": "gone", "input": "b"}]},
            ),
            404,
        )
        assert "'gone'" in err["message"] and err["tasks"] == ["conll03", "keywords"]
        assert _error(client.get(f"{url}/v1/tasks/nope"), 404)["tasks"] == ["conll03", "keywords"]

        err = _error(
            client.post(
                f"{url}/v1/tasks/keywords/predict", content=b"{not json", headers={"content-type": "application/json"}
            ),
            400,
        )
        assert err["message"] == "the request body is not valid JSON"
        err = _error(client.post(f"{url}/v1/tasks/keywords/predict", json={"texts": ["a"]}), 400)
        assert err["message"].startswith("inputs: Field required") and '{"inputs": [' in err["fix"]
        err = _error(client.post(f"{url}/v1/predict", json={"requests": [{"task": "keywords"}]}), 400)
        assert err["message"].startswith("requests[0].input: Field required") and '"requests"' in err["fix"]
        err = _error(client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": []}), 400)
        assert err["message"].startswith("inputs:")
        err = _error(client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["ok", {"words": 1}]}), 400)
        assert err["message"].startswith("inputs[1]: keywords needs") and "text" in err["fix"]
        err = _error(client.post(f"{url}/v1/predict", json={"requests": [{"task": "conll03", "input": {"x": 1}}]}), 400)
        assert err["message"].startswith("requests[0].input: conll03 needs")

        big = {"inputs": ["word " * 1000]}  # ~5 KB against a 4 KiB limit
        err = _error(client.post(f"{url}/v1/tasks/keywords/predict", json=big), 413)
        assert "--max-body-kb" in err["fix"]

        def chunks():  # no content-length: the limit still holds
            yield b'{"inputs": ["'
            for _ in range(100):
                yield b"word " * 10
            yield b'"]}'

        _error(
            client.post(
                f"{url}/v1/tasks/keywords/predict", content=chunks(), headers={"content-type": "application/json"}
            ),
            413,
        )
        _error(client.get(f"{url}/v2/nothing"), 404)
        _error(client.get(f"{url}/v1/predict"), 405)
        # the server still answers after all of that
        assert client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["a"]}).status_code == 200


def test_api_key_guards_everything_but_the_probes(masks, client, monkeypatch):
    monkeypatch.setenv("MASKCTL_API_KEY", "s3cret")
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):
        assert client.get(f"{url}/health").status_code == 200 and client.get(f"{url}/ready").status_code == 200
        for path in ("/v1/tasks", "/metrics", "/openapi.json", "/docs"):
            err = _error(client.get(f"{url}{path}"), 401)
            assert err["message"] == "no API key was given" and "Bearer" in err["fix"]
        response = client.get(f"{url}/v1/tasks", headers={"Authorization": "Bearer wrong"})
        assert _error(response, 401)["message"] == "a wrong API key was given"
        assert response.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        assert client.get(f"{url}/v1/tasks", headers=good).status_code == 200
        assert client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["a"]}, headers=good).status_code == 200
        _error(client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": ["a"]}), 401)
    monkeypatch.delenv("MASKCTL_API_KEY")
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):  # no key: open
        assert client.get(f"{url}/v1/tasks").status_code == 200


def test_other_hosts_need_a_key_or_insecure(masks, monkeypatch):
    monkeypatch.delenv("MASKCTL_API_KEY", raising=False)
    with pytest.raises(MaskctlError, match="without an API key"):
        ServeSettings(paths=[str(masks)], host="0.0.0.0").check()
    assert ServeSettings(paths=[str(masks)], host="0.0.0.0", api_key="k").check().api_key == "k"
    assert ServeSettings(paths=[str(masks)], host="0.0.0.0", insecure=True).check()
    assert ServeSettings(paths=[str(masks)], host="localhost").check()
    assert ServeSettings(paths=[str(masks)], host="::1").check()
    monkeypatch.setenv("MASKCTL_API_KEY", "from-env")
    assert ServeSettings(paths=[str(masks)], host="10.0.0.1").check().api_key == "from-env"
    with pytest.raises(MaskctlError, match="--port 70000 is out of range"):
        ServeSettings(paths=[str(masks)], port=70000).check()
    with pytest.raises(MaskctlError, match="does not exist"):
        ServeSettings(paths=[str(masks / "none")]).check()
