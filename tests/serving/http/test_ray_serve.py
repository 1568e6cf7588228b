"""``maskctl serve --ray``: the server's own app as a Ray Serve deployment on a local Ray instance
(``local_ray``: 2 CPUs, 127.0.0.1): mixed-task answers equal to ``MaskedModel.predict_many``,
readiness from the replica's loaded tasks, and one clear line when ray is missing."""

from __future__ import annotations

import dataclasses
import sys

import httpx
import pytest
import torch

from maskctl.cli import main
from maskctl.errors import MaskctlError
from maskctl.serving import MaskedModel
from maskctl.serving.http.settings import ServeSettings
from tests.serving.http.test_endpoints import TEXTS, WORDS, _close


def test_ray_options_need_ray(masks):
    with pytest.raises(MaskctlError, match="--replicas applies to --ray"):
        ServeSettings(paths=[str(masks)], replicas=2).check()
    with pytest.raises(MaskctlError, match="--ray-address applies to --ray"):
        ServeSettings(paths=[str(masks)], ray_address="auto").check()


def test_missing_ray_is_one_line_naming_the_extra(monkeypatch, capsys, masks):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(SystemExit) as info:
        main(["serve", str(masks), "--ray", "--replicas", "2"])
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    assert info.value.code == 2 and len(lines) == 1, lines
    assert "maskctl serve --ray needs ray[serve], which is not installed" in lines[0]
    assert 'pip install "maskctl[ray]"' in lines[0]


@pytest.mark.slow
def test_a_ray_serve_replica_answers_like_masked_model(local_ray, masks, three_tasks, tiny_bert):
    pytest.importorskip("ray.serve")
    from ray import serve

    from maskctl.serving.http import ray as on_ray

    paths, _ = three_tasks
    settings = ServeSettings(
        paths=[str(masks)], model=str(tiny_bert), ray=True, port=0, watch_seconds=0, admin=True, log_level="warning"
    )
    url, tasks = on_ray.deploy(settings)
    try:
        assert sorted(tasks) == ["conll03", "keywords"]
        mixed = [
            ("conll03", WORDS[0]),
            ("keywords", TEXTS[0]),
            ("conll03", {"tokens": WORDS[1]}),
            ("keywords", {"text": TEXTS[1], "text_pair": TEXTS[2]}),
            ("conll03", "EU rejects it"),
        ]
        with httpx.Client(timeout=60) as client:
            assert client.get(f"{url}/ready").json() == {"status": "ready", "tasks": 2}
            results = client.post(
                f"{url}/v1/predict", json={"requests": [{"task": t, "input": i} for t, i in mixed]}
            ).json()["results"]
            one = client.post(f"{url}/v1/tasks/keywords/predict", json={"inputs": TEXTS}).json()["predictions"]
            tei = client.post(f"{url}/predict", headers={"X-Maskctl-Task": "keywords"}, json={"inputs": TEXTS[0]})
            assert tei.status_code == 200  # every route of the app, through the one ingress
            assert (
                client.post(f"{url}/v1/predict", json={"requests": [{"task": "nope", "input": "x"}]}).json()["error"][
                    "code"
                ]
                == 404
            )
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the replica runs (--threads 1)
        try:
            reference = MaskedModel.from_bundles([paths["keywords"], paths["conll03"]], model=str(tiny_bert))
            expected = reference.predict_many(mixed)
            alone = reference.predict("keywords", TEXTS)
            reference.close()
        finally:
            torch.set_num_threads(threads)
        assert [r["task"] for r in results] == [t for t, _ in mixed]
        for got, want in zip(results, expected):
            _close(got["prediction"], dataclasses.asdict(want))
        for got, want in zip(one, alone):
            _close(got, dataclasses.asdict(want))

        handle = serve.get_app_handle(on_ray.APP_NAME)
        handle.check_health.remote().result()  # serving two tasks: healthy
        with httpx.Client(timeout=60) as client:
            for name in ("keywords", "conll03"):
                assert client.delete(f"{url}/v1/admin/tasks/{name}").status_code == 200
            assert client.get(f"{url}/ready").status_code == 503
        with pytest.raises(Exception, match="no task is served"):  # readiness from the replica's tasks
            handle.check_health.remote().result()
    finally:
        on_ray.undeploy()
    try:  # the same deployment as a Serve application (serve run / a KubeRay RayService's import_path)
        application = on_ray.app(
            {
                "paths": str(masks),
                "model": str(tiny_bert),
                "insecure": "true",
                "watch_seconds": "0",
                "log_level": "warning",
            }
        )
        handle = serve.run(application, name=on_ray.APP_NAME, route_prefix="/")
        assert sorted(handle.tasks.remote().result()) == ["conll03", "keywords"]
    finally:
        on_ray.undeploy()
        serve.shutdown()


def test_the_serve_application_takes_settings_by_name(masks):
    pytest.importorskip("ray.serve")
    from maskctl.serving.http.ray import _settings_from, app

    settings = _settings_from(
        {"paths": str(masks), "replicas": "3", "threads": "2", "admin": "true", "max_wait_ms": "2.5", "pin": "a,b"}
    )
    assert (
        settings.paths,
        settings.replicas,
        settings.threads,
        settings.admin,
        settings.max_wait_ms,
        settings.pin,
        settings.ray,
    ) == ([str(masks)], 3, 2, True, 2.5, ["a", "b"], True)
    with pytest.raises(MaskctlError, match="did you mean 'replicas'"):
        _settings_from({"paths": str(masks), "replica": "2"})
    with pytest.raises(MaskctlError, match="no API key was given"):
        app({"paths": str(masks)})
