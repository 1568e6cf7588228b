"""``bench/run.py --tenants``: ``maskctl serve`` against clients that misbehave, the goals of
issue 20 measured on the packaged MiniLM (4 bbc-news task bundles, as ``bench/serving.py``
derives them), the real ``maskctl serve`` command on loopback:

* isolation: 8 well-behaved closed-loop clients while a hostile one sends, over and over, every
  bad input the isolation tests cover; counted: failed good requests (goal 0);
* fairness: a 1-input client while another streams 10,000-input requests; goal: its p99 within
  3 x (batch wait + one batch's compute), the batch compute read from the server's metrics;
* a served bundle overwritten in place with a corrupt file, then restored, under traffic to its
  task; goal: zero failed requests;
* TEI ``/{task}/predict`` and OIP ``/v2/models/{task}/infer`` against ``/v1/tasks/{task}/predict``
  at the same load, 6 rounds in rotated order; goal: >= 0.95 of ``/v1``'s throughput;
* SIGTERM with a stalled upload (``--drain-seconds 2``); goal: exit 0 within drain + 1 s.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import log, median, save_results, serve_process
from bench.http_load import _load, _metric

MAX_BATCH, MAX_WAIT_MS, DRAIN_S, ROUNDS = 32, 5.0, 2.0, 6
HOSTILE: list[tuple[str, dict[str, Any]]] = [  # (route, httpx request arguments): what the isolation tests send
    ("/v1/tasks/{task}/predict", {"json": {"inputs": [{"text": "a", "text_pair": 5}]}}),
    (
        "/v1/tasks/{task}/predict",
        {"content": b'{"inputs": ["\\ud800 lone"]}', "headers": {"content-type": "application/json"}},
    ),
    ("/v1/tasks/{task}/predict", {"content": b'{"inputs": [', "headers": {"content-type": "application/json"}}),
    ("/v1/tasks/{task}/predict", {"content": b'{"inputs": ["a"]}'}),  # no JSON content type
    ("/v1/tasks/{task}/predict", {"json": {"inputs": ["a"]}, "headers": {"x-big": "x" * 100_000}}),
    ("/v1/tasks/{task}/predict", {"json": {"inputs": ["a " * 10] * 2000}}),  # heavy but legitimate
    (
        "/v1/tasks/{task}/predict",
        {"content": b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", "headers": {"content-type": "application/json"}},
    ),
    ("/v1/tasks/nothing/predict", {"json": {"inputs": ["a"]}}),
    ("/v1/admin/bundles", {"json": {"bundle": "a\u0000.bundle"}}),
    ("/v1/admin/bundles", {"json": {"bundle": "x" * 300 + ".bundle"}}),
    (
        "/v1/predict",
        {
            "content": b'{"requests": [{"task": "{task}", "input": ["a", "\\udfff"]}]}',
            "headers": {"content-type": "application/json"},
        },
    ),
]


def _v1(task: str):
    return lambda items: (f"/v1/tasks/{task}/predict", json.dumps({"inputs": [t for _, t in items]}).encode())


def _tei(task: str):
    return lambda items: (f"/{task}/predict", json.dumps({"inputs": [[t] for _, t in items]}).encode())


def _oip(task: str):
    return lambda items: (
        f"/v2/models/{task}/infer",
        json.dumps(
            {"inputs": [{"name": "text", "shape": [len(items)], "datatype": "BYTES", "data": [t for _, t in items]}]}
        ).encode(),
    )


def tenants_section(model: str | None, work: Path) -> dict[str, Any]:
    from bench.serving_tasks import make_bundles, texts

    folder = work / "tenant-masks"
    folder.mkdir(parents=True, exist_ok=True)
    for path in make_bundles(work / "serving", model, 4):
        if not (folder / path.name).exists():
            shutil.copy(path, folder / path.name)
    options = ["--max-batch", str(MAX_BATCH), "--max-wait-ms", str(MAX_WAIT_MS), "--watch-seconds", "0.2"]
    options += ["--max-client-batch-size", "10000", "--max-body-kb", "4096", "--drain-seconds", str(DRAIN_S), "--admin"]
    out: dict[str, Any] = {"max_batch": MAX_BATCH, "max_wait_ms": MAX_WAIT_MS}
    with serve_process(folder, *options, model=model) as (server, url):
        import httpx

        names = [t["name"] for t in httpx.get(f"{url}/v1/tasks").json()["tasks"]]
        short = texts(False)
        out["isolation"] = asyncio.run(_isolation(url, names, short))
        log(f"tenants: isolation {out['isolation']}")
        out["fairness"] = asyncio.run(_fairness(url, names[0], short))
        log(f"tenants: fairness {out['fairness']}")
        out["overwrite"] = asyncio.run(_overwrite(url, names[1], folder, short))
        log(f"tenants: overwrite {out['overwrite']}")
        out["protocols"] = _protocols(url, names[2], short)
        log(f"tenants: protocols {out['protocols']}")
        out["sigterm"] = _sigterm(server, url)
        log(f"tenants: sigterm {out['sigterm']}")
    return out


async def _isolation(url: str, names: list[str], pool: list[str]) -> dict[str, Any]:
    import httpx

    requests = [(names[i % len(names)], pool[i % len(pool)]) for i in range(512)]
    statuses: dict[str, int] = {}
    done = asyncio.Event()

    async def hostile() -> None:
        async with httpx.AsyncClient(timeout=120) as c:
            i = 0
            while not done.is_set():
                route, kwargs = HOSTILE[i % len(HOSTILE)]
                if "json" in kwargs:
                    kwargs = json.loads(json.dumps(kwargs).replace("{task}", names[0]))
                elif b"{task}" in kwargs["content"]:
                    kwargs = {**kwargs, "content": kwargs["content"].replace(b"{task}", names[0].encode())}
                try:
                    r = await c.post(url + route.format(task=names[0]), **kwargs)
                    statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                i += 1

    async def good() -> dict[str, Any]:
        try:
            return await _load(url, requests, 8, 1, encode=lambda items: _v1(items[0][0])(items))
        finally:
            done.set()

    served, _ = await asyncio.gather(good(), hostile())
    return {
        "good_requests": len(requests),
        "good_failed": served["failures"],
        "good_p99_ms": served["p99_ms"],
        "hostile_requests": sum(statuses.values()),
        "hostile_statuses": statuses,
    }


async def _fairness(url: str, task: str, pool: list[str]) -> dict[str, Any]:
    import httpx

    before = (await asyncio.to_thread(httpx.get, f"{url}/metrics")).text
    big = [(task, pool[i % len(pool)]) for i in range(10_000)]
    stop = asyncio.Event()
    latencies: list[float] = []
    big_seconds: list[float] = []

    async def streamer() -> None:
        try:
            for _ in range(3):
                tick = time.perf_counter()
                got = await _load(url, big, 1, len(big), encode=_v1(task))
                assert got["failures"] == 0, got
                big_seconds.append(time.perf_counter() - tick)
        finally:
            stop.set()

    async def small() -> None:
        async with httpx.AsyncClient(timeout=120) as c:
            await asyncio.sleep(0.5)
            while not stop.is_set():
                tick = time.perf_counter()
                r = await c.post(f"{url}/v1/tasks/{task}/predict", json={"inputs": [pool[0]]})
                assert r.status_code == 200, r.text
                latencies.append(1000 * (time.perf_counter() - tick))
                await asyncio.sleep(0.02)

    await asyncio.gather(streamer(), small())
    after = (await asyncio.to_thread(httpx.get, f"{url}/metrics")).text
    batches = _metric(after, "maskctl_batch_inputs_count") - _metric(before, "maskctl_batch_inputs_count")
    compute_ms = (
        1000
        * (_metric(after, "maskctl_batch_duration_seconds_sum") - _metric(before, "maskctl_batch_duration_seconds_sum"))
        / batches
    )
    latencies.sort()
    return {
        "big_request_inputs": len(big),
        "big_request_s": median(big_seconds),
        "small_requests": len(latencies),
        "small_p50_ms": latencies[len(latencies) // 2],
        "small_p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "batch_compute_ms": compute_ms,
        "p99_bound_ms": 3 * (MAX_WAIT_MS + compute_ms),
    }


async def _overwrite(url: str, task: str, folder: Path, pool: list[str]) -> dict[str, Any]:
    import httpx

    served = (await asyncio.to_thread(httpx.get, f"{url}/v1/tasks/{task}")).json().get("bundle")
    path = next(p for p in sorted(folder.glob("*.bundle")) if p.name == served)
    good = path.read_bytes()
    requests = [(task, pool[i % len(pool)]) for i in range(600)]

    async def change() -> list[str]:
        seen = []
        await asyncio.sleep(1.0)
        with path.open("r+b") as f:  # in place: truncated and rewritten, as `cp` does
            f.truncate(0)
            f.write(b"\x00" * 4096)
        async with httpx.AsyncClient(timeout=30) as c:
            for _ in range(100):
                info = (await c.get(f"{url}/v1/tasks/{task}")).json()
                if "reload_error" in info:
                    seen.append("reload_error shown")
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            with path.open("r+b") as f:
                f.truncate(0)
                f.write(good)
            for _ in range(100):
                if "reload_error" not in (await c.get(f"{url}/v1/tasks/{task}")).json():
                    seen.append("good version back")
                    break
                await asyncio.sleep(0.1)
        return seen

    served, seen = await asyncio.gather(_load(url, requests, 4, 1, encode=_v1(task)), change())
    return {"requests": len(requests), "failed": served["failures"], "events": seen}


def _protocols(url: str, task: str, pool: list[str]) -> dict[str, Any]:
    requests = [(task, pool[i % len(pool)]) for i in range(384)]
    routes = {"v1": _v1(task), "tei": _tei(task), "oip": _oip(task)}
    for encode in routes.values():
        asyncio.run(_load(url, requests[:64], 8, 1, encode=encode))  # warm-up
    rates: dict[str, list[float]] = {k: [] for k in routes}
    failures = 0
    order = list(routes)
    for round_ in range(ROUNDS):  # each route goes first, second and third equally often
        for name in order[round_ % 3 :] + order[: round_ % 3]:
            encode = routes[name]
            got = asyncio.run(_load(url, requests, 8, 1, encode=encode))
            rates[name].append(got["inputs_per_s"])
            failures += got["failures"]
    out = {f"{k}_inputs_per_s": median(v) for k, v in rates.items()}
    for k in ("tei", "oip"):
        ratios = [a / b for a, b in zip(rates[k], rates["v1"])]
        out[f"{k}_vs_v1"], out[f"{k}_vs_v1_range"] = median(ratios), [min(ratios), max(ratios)]
    out["failures"] = failures
    return out


def _sigterm(server: subprocess.Popen, url: str) -> dict[str, Any]:
    stalled = socket.create_connection(("127.0.0.1", urlsplit(url).port))
    stalled.sendall(
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100000\r\n\r\n{"requests": ['
    )
    time.sleep(0.5)
    tick = time.perf_counter()
    server.send_signal(signal.SIGTERM)
    code = server.wait(120)
    seconds = time.perf_counter() - tick
    stalled.close()
    return {"drain_seconds": DRAIN_S, "exit_code": code, "exit_s": seconds, "goal_s": DRAIN_S + 1}


def write_tenants(results: dict[str, Any], out: Path) -> Path:
    s = results["sections"]["tenants"]
    i, f, o, p, t = s["isolation"], s["fairness"], s["overwrite"], s["protocols"], s["sigterm"]
    lines = [
        (
            f"{save_results(results, out, 'tenants')} Packaged MiniLM, 4 bbc-news task bundles, --max-batch "
            f"{s['max_batch']}, --max-wait-ms {s['max_wait_ms']:g}."
        ),
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        (
            f"| 0 failed requests of 8 good clients while 1 hostile client sends every bad input | "
            f"{i['good_failed']} of {i['good_requests']} failed (p99 {i['good_p99_ms']:.0f} ms); hostile: "
            f"{i['hostile_requests']} requests, statuses {i['hostile_statuses']} | {'yes' if i['good_failed'] == 0 else 'no'} |"
        ),
        (
            f"| p99 of a 1-input request beside 10,000-input requests <= 3 x (wait + batch) | p50 "
            f"{f['small_p50_ms']:.0f} ms, p99 {f['small_p99_ms']:.0f} ms vs bound {f['p99_bound_ms']:.0f} ms "
            f"({f['small_requests']} requests; batch {f['batch_compute_ms']:.0f} ms; one 10,000-input request "
            f"{f['big_request_s']:.1f} s) | {'yes' if f['small_p99_ms'] <= f['p99_bound_ms'] else 'no'} |"
        ),
        (
            f"| 0 failed requests while the task's bundle is overwritten in place by a corrupt file, then restored | "
            f"{o['failed']} of {o['requests']} failed; {', '.join(o['events'])} | {'yes' if o['failed'] == 0 else 'no'} |"
        ),
        (
            f"| TEI and OIP throughput >= 0.95 x /v1 | TEI {p['tei_vs_v1']:.2f} ({p['tei_vs_v1_range'][0]:.2f}-"
            f"{p['tei_vs_v1_range'][1]:.2f}), OIP {p['oip_vs_v1']:.2f} ({p['oip_vs_v1_range'][0]:.2f}-"
            f"{p['oip_vs_v1_range'][1]:.2f}); /v1 {p['v1_inputs_per_s']:.1f} inputs/s | "
            f"{'yes' if min(p['tei_vs_v1'], p['oip_vs_v1']) >= 0.95 else 'no'} |"
        ),
        (
            f"| SIGTERM with a stalled upload: exit 0 within --drain-seconds + 1 s | exit {t['exit_code']} after "
            f"{t['exit_s']:.1f} s (drain {t['drain_seconds']:g} s) | "
            f"{'yes' if t['exit_code'] == 0 and t['exit_s'] <= t['goal_s'] else 'no'} |"
        ),
    ]
    path = out / "results-tenants.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
