"""``bench/run.py --http``: ``maskctl serve`` under a bounded load on loopback, against
``MaskedModel.predict_many`` called directly with batches of the same size.

The server runs as its own process (the real ``maskctl serve`` command, 16 bbc-news task bundles
derived as in ``bench/serving.py``); this process is the load generator: a fixed number of
requests, N concurrent clients (asyncio + httpx, one input per request, tasks drawn at random,
short or long texts), each client sending its next request when the last one is answered. The
library contender runs the same requests through ``predict_many`` in this process, in batches of
the mean size the server formed (read from its Prometheus metrics), while the server idles.
Server and library alternate round by round; the ratio is taken per round.

Goal: server throughput >= 0.9 x the library's, no failed request, p99 latency within 3 x (the
batch wait + one batch's compute).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import log, median, save_results, serve_process

TASKS = 16
ROUNDS = 3
SETTINGS = (
    {"clients": 8, "length": "short", "requests": 512},
    {"clients": 32, "length": "short", "requests": 512},
    {"clients": 64, "length": "short", "requests": 768},
    {"clients": 8, "length": "short", "requests": 768, "per_request": 8},
    {"clients": 64, "length": "long", "requests": 256},
)
THREADS = (None, 1)  # torch's default (one per core), then one thread
MAX_BATCH, MAX_WAIT_MS = 32, 5.0


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def mixed_body(items: list[tuple[str, str]]) -> tuple[str, bytes]:
    """``/v1/predict`` with one request per ``(task, text)``."""
    import json

    return "/v1/predict", json.dumps({"requests": [{"task": task, "input": text} for task, text in items]}).encode()


async def _load(
    url: str, requests: list[tuple[str, str]], clients: int, per_request: int = 1, encode=mixed_body
) -> dict[str, Any]:
    """Closed-loop clients on keep-alive HTTP/1.1 connections. A minimal client (asyncio
    streams, requests written as bytes, responses read by Content-Length), as load tools like
    wrk are: the generator shares the machine's cores with the server, so it must cost little.
    ``encode`` turns a request's items into its route and body (``mixed_body``: ``/v1/predict``)."""

    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    failures: list[str] = []
    queue = list(reversed(requests))
    done = 0

    async def client() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                items = [queue.pop() for _ in range(min(per_request, len(queue)))]
                path, body = encode(items)
                tick = time.perf_counter()
                writer.write(
                    b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (path.encode(), host.encode(), len(body), body)
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - tick)
                done += len(items)
                if not head.startswith(b"HTTP/1.1 200"):
                    failures.append((head.split(b"\r\n")[0] + b" " + answer[:200]).decode())
        except (OSError, asyncio.IncompleteReadError) as exc:
            failures.append(repr(exc))
        finally:
            writer.close()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies.sort()
    return {
        "inputs_per_s": len(requests) / wall,
        "client_cpu_share": cpu / wall,
        "failures": len(failures) + (len(requests) - done) // per_request,
        "first_failures": failures[:3],
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def http_section(model: str | None, work: Path) -> dict[str, Any]:
    """Every setting of ``SETTINGS`` at torch's default threads, then at one thread (the other
    core left to the HTTP side and the load generator), each against the library at the same
    thread count."""
    from bench.serving_tasks import make_bundles

    folder = work / "http-masks"
    folder.mkdir(parents=True, exist_ok=True)
    for path in make_bundles(work / "serving", model, TASKS):
        if not (folder / path.name).exists():
            shutil.copy(path, folder / path.name)
    out: dict[str, Any] = {
        "tasks": TASKS,
        "max_batch": MAX_BATCH,
        "max_wait_ms": MAX_WAIT_MS,
        "rounds": ROUNDS,
        "threads": {},
    }
    for threads in THREADS:
        out["threads"][str(threads or "default")] = _one_server(model, folder, threads)
    return out


def _one_server(model: str | None, folder: Path, threads: int | None) -> dict[str, Any]:
    import torch

    from maskctl.serving import MaskedModel

    options = ["--max-batch", str(MAX_BATCH), "--max-wait-ms", str(MAX_WAIT_MS), "--watch-seconds", "0"]
    options += ["--threads", str(threads)] if threads else []
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    library = MaskedModel.from_bundles(sorted(folder.glob("*.bundle")), model=model, device="cpu")
    names = library.tasks
    out: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "settings": {}}
    try:
        with serve_process(folder, *options, model=model) as (server, url):
            _measure(url, library, names, out)
        out["server_exit_code"] = server.returncode
    finally:
        library.close()
        torch.set_num_threads(default_threads)
    return out


def _measure(url: str, library: Any, names: list[str], out: dict[str, Any]) -> None:
    """Every setting of ``SETTINGS`` against the server at ``url`` and the library side by side."""
    import httpx

    from bench.serving_tasks import texts

    corpus = {"short": texts(False), "long": texts(True)}
    for setting in SETTINGS:
        rng = random.Random(setting["clients"])
        pool = corpus[setting["length"]]
        requests = [(rng.choice(names), rng.choice(pool)) for _ in range(setting["requests"])]
        per = setting.get("per_request", 1)
        asyncio.run(_load(url, requests[:64], setting["clients"], per))  # warm-up
        library.predict_many(requests[:64], batch_size=MAX_BATCH)
        rows = []
        for _ in range(ROUNDS):
            before = httpx.get(f"{url}/metrics").text
            served = asyncio.run(_load(url, requests, setting["clients"], per))
            after = httpx.get(f"{url}/metrics").text
            batches = _metric(after, "maskctl_batch_inputs_count") - _metric(before, "maskctl_batch_inputs_count")
            compute = _metric(after, "maskctl_batch_duration_seconds_sum") - _metric(
                before, "maskctl_batch_duration_seconds_sum"
            )
            size = max(1, round(len(requests) / batches))
            tick = time.perf_counter()
            for start in range(0, len(requests), size):
                library.predict_many(requests[start : start + size], batch_size=size)
            lib_rate = len(requests) / (time.perf_counter() - tick)
            rows.append(
                {
                    **served,
                    "mean_batch": len(requests) / batches,
                    "batch_compute_ms": 1000 * compute / batches,
                    "library_inputs_per_s": lib_rate,
                    "ratio": served["inputs_per_s"] / lib_rate,
                }
            )
        key = f"{setting['clients']} clients x {per}/{setting['length']}"
        p99_bound = 3 * (MAX_WAIT_MS + median([r["batch_compute_ms"] for r in rows]))
        out["settings"][key] = s = {
            "requests": setting["requests"] // per,
            "inputs": setting["requests"],
            "per_request": per,
            "rounds": rows,
            "ratio": median([r["ratio"] for r in rows]),
            "ratio_range": [min(r["ratio"] for r in rows), max(r["ratio"] for r in rows)],
            "server_inputs_per_s": median([r["inputs_per_s"] for r in rows]),
            "library_inputs_per_s": median([r["library_inputs_per_s"] for r in rows]),
            "mean_batch": statistics.fmean(r["mean_batch"] for r in rows),
            "batch_compute_ms": median([r["batch_compute_ms"] for r in rows]),
            "client_cpu_share": median([r["client_cpu_share"] for r in rows]),
            "p50_ms": median([r["p50_ms"] for r in rows]),
            "p99_ms": median([r["p99_ms"] for r in rows]),
            "p99_bound_ms": p99_bound,
            "failures": sum(r["failures"] for r in rows),
        }
        log(
            f"http ({out['torch_threads']} threads): {key}: server {s['server_inputs_per_s']:.1f}/s vs library "
            f"{s['library_inputs_per_s']:.1f}/s = {s['ratio']:.2f} (batch {s['mean_batch']:.1f}), p50 "
            f"{s['p50_ms']:.0f} ms p99 {s['p99_ms']:.0f} ms (bound {p99_bound:.0f}), failures {s['failures']}"
        )


def write_http(results: dict[str, Any], out: Path) -> Path:
    """``results-http.json`` and the table of ``results-http.md``."""
    s = results["sections"]["http"]
    lines = [
        (
            f"{save_results(results, out, 'http')} {s['tasks']} tasks, --max-batch "
            f"{s['max_batch']}, --max-wait-ms {s['max_wait_ms']:g}, {s['rounds']} rounds "
            f"(medians; the ratio's range in brackets)."
        ),
        "",
        (
            "| torch threads | clients | inputs per request | texts | inputs | server inputs/s | library inputs/s (same batch size) "
            "| server / library | mean batch | p50 ms | p99 ms | p99 bound ms | failed | load generator CPU |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in s["threads"].values():
        for key, row in run["settings"].items():
            clients, length = key.split("/")
            lines.append(
                f"| {run['torch_threads']} | {clients.split()[0]} | {row['per_request']} | {length} | {row['inputs']} | "
                f"{row['server_inputs_per_s']:.1f} | {row['library_inputs_per_s']:.1f} | **{row['ratio']:.2f}** "
                f"({row['ratio_range'][0]:.2f}-{row['ratio_range'][1]:.2f}) | {row['mean_batch']:.1f} | "
                f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['p99_bound_ms']:.0f} | {row['failures']} | "
                f"{100 * row['client_cpu_share']:.0f} % of a core |"
            )
    codes = {k: v["server_exit_code"] for k, v in s["threads"].items()}
    lines += ["", f"Exit code of each server after SIGTERM: {codes}."]
    path = out / "results-http.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
