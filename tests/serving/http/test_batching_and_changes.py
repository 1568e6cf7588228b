"""Dynamic batching across tasks (and probes answered while a batch computes), bundles added
to and removed from the served folder under traffic with no request failing, the admin
endpoints, and what is refused."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.serving.http.conftest import running


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_concurrent_requests_of_many_tasks_share_batches(masks, client):
    with running(paths=[str(masks)], watch_seconds=0, max_wait_ms=300, max_batch=64) as (url, _):

        def one(i: int) -> int:
            with httpx.Client(timeout=60) as c:
                body = {"requests": [{"task": "keywords" if i % 2 else "conll03", "input": f"alpha beta {i}"}]}
                return c.post(f"{url}/v1/predict", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(one, range(8))) == [200] * 8
        text = client.get(f"{url}/metrics").text
        batches, inputs = _metric(text, "maskctl_batch_inputs_count"), _metric(text, "maskctl_batch_inputs_sum")
        assert inputs == 8 and batches < 8  # requests waited for each other: fewer batches than requests
        assert _metric(text, "maskctl_batch_tasks_sum") > batches  # and batches mixed the two tasks


def test_probes_answer_while_a_batch_computes(masks, client):
    with running(paths=[str(masks)], watch_seconds=0, max_wait_ms=0) as (url, state):
        gate, entered = threading.Event(), threading.Event()
        real = state.model.run

        def held(*args, **kwargs):
            entered.set()
            gate.wait(30)
            return real(*args, **kwargs)

        state.model.run = held
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.post, f"{url}/v1/tasks/keywords/predict", json={"inputs": ["alpha"]})
            assert entered.wait(30)
            with httpx.Client(timeout=5) as other:  # the batch is still held
                assert other.get(f"{url}/health").json()["status"] == "ok"
                assert other.get(f"{url}/v1/tasks").status_code == 200
            assert not pending.done()
            gate.set()
            assert pending.result().status_code == 200


def test_bundles_come_and_go_under_traffic_without_failures(masks, three_tasks, tiny_models, client, caplog):
    paths, _ = three_tasks
    with running(paths=[str(masks)], watch_seconds=0.05) as (url, _state):
        failures, done = [], threading.Event()

        def traffic(task: str, text: str) -> None:
            with httpx.Client(timeout=60) as c:
                while not done.is_set():
                    r = c.post(f"{url}/v1/tasks/{task}/predict", json={"inputs": [text]})
                    if r.status_code != 200:
                        failures.append(r.text)

        threads = [threading.Thread(target=traffic, args=("keywords", "alpha beta")) for _ in range(2)]
        for t in threads:
            t.start()

        def served() -> list[str]:
            return [t["name"] for t in client.get(f"{url}/v1/tasks").json()["tasks"]]

        def wait_for(condition) -> None:
            deadline = time.monotonic() + 30
            while not condition():
                assert time.monotonic() < deadline
                time.sleep(0.05)

        shutil.copy(paths["swag"], masks / "swag.bundle")
        wait_for(lambda: "swag" in served())
        body = {"inputs": [{"context": "a day", "endings": ["nice", "sad", "long", "short"]}]}
        assert client.post(f"{url}/v1/tasks/swag/predict", json=body).status_code == 200
        (masks / "conll03.bundle").unlink()
        wait_for(lambda: "conll03" not in served())
        assert client.post(f"{url}/v1/tasks/conll03/predict", json={"inputs": ["a b"]}).status_code == 404

        (masks / "broken.bundle").write_bytes(b"not a bundle at all")
        wait_for(lambda: any("broken.bundle" in r.getMessage() for r in caplog.records))
        done.set()
        for t in threads:
            t.join()
        assert failures == []
        assert served() == ["keywords", "swag"]
        refusal = next(r.getMessage() for r in caplog.records if "broken.bundle" in r.getMessage())
        assert refusal.startswith("refused bundle broken.bundle")
        assert 'maskctl_bundle_events_total{event="refused"} 1.0' in client.get(f"{url}/metrics").text


def test_admin_loads_and_unloads_by_file_name_only(masks, three_tasks, client):
    paths, _ = three_tasks
    with running(paths=[str(masks)], watch_seconds=0, admin=True) as (url, _):
        shutil.copy(paths["swag"], masks / "later.bundle")  # no watching: only the admin call loads it
        got = client.post(f"{url}/v1/admin/bundles", json={"bundle": "later.bundle"})
        assert got.status_code == 201 and got.json()["name"] == "swag" and got.json()["bundle"] == "later.bundle"
        assert client.post(f"{url}/v1/admin/bundles", json={"bundle": "later.bundle"}).status_code == 409
        for name in ("../keywords.bundle", "/etc/passwd", "sub/x.bundle", "keywords.txt"):
            assert client.post(f"{url}/v1/admin/bundles", json={"bundle": name}).status_code == 400, name
        assert client.post(f"{url}/v1/admin/bundles", json={"bundle": "none.bundle"}).status_code == 404
        assert client.delete(f"{url}/v1/admin/tasks/swag").json() == {"unloaded": "swag"}
        assert client.delete(f"{url}/v1/admin/tasks/swag").status_code == 404
        assert (
            client.post(f"{url}/v1/tasks/swag/predict", json={"inputs": [{"context": "a", "endings": []}]}).status_code
            == 404
        )
        shutil.copy(paths["keywords"], masks / "again.bundle")  # the same task twice: refused
        assert client.post(f"{url}/v1/admin/bundles", json={"bundle": "again.bundle"}).status_code == 409
    with running(paths=[str(masks)], watch_seconds=0) as (url, _):  # admin off: no such endpoints
        assert client.post(f"{url}/v1/admin/bundles", json={"bundle": "later.bundle"}).status_code == 404
