"""``python bench/ray_overhead.py``: what Ray costs on one machine (issue 23), as ratios.

1. **Sweep.** A 4-point tiny-model sweep (tests' tiny BERT, the keyword task; lr x seed) on the
   local backend, then as Ray Tune trials on a local Ray instance of 2 CPUs: one trial at a time
   with 2 CPUs (the local backend's threads: the difference is Ray's overhead per trial) and two at
   once with 1 CPU each. Rounds alternate the three; ``ray.init`` is timed apart (paid once).
2. **Serving.** ``maskctl serve`` at 1 and at 2 torch threads (own processes) and ``maskctl serve
   --ray``'s deployment as three Serve applications behind one proxy (1 replica x 1 thread, 1 x 2,
   2 x 1; deployed from this process on a local Ray instance told 5 CPUs so that all are placed at
   once), under the same closed-loop load (``bench/http_load.py``'s minimal client, mixed-task
   ``/v1/predict`` on 4 bbc-news tasks of the packaged MiniLM). All five are up at once and measured
   one at a time, round by round in a rotating order, so that the load other jobs put on the
   machine falls on all alike; each ratio is taken per round: Ray / ``maskctl serve`` at the same
   threads, and 2 replicas x 1 thread / 1 replica x 2 threads.

Everything stays on 127.0.0.1 (Ray's node address included; no dashboard, no usage report) and is
bounded: a fixed number of requests per round, a few rounds. Results: ``bench/results/ray-overhead.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from bench.common import log, median, serve_process
from bench.http_load import _load, _metric
from maskctl.serving.http.ports import free_port

GRID = {"lr": [1e-2, 5e-2], "seed": [0, 1]}
SWEEP_ROUNDS = 2
SERVE_ROUNDS = 3
TASKS = 4
LOADS = (
    {"clients": 8, "requests": 192, "per_request": 1},
    {"clients": 32, "requests": 256, "per_request": 1},
    {"clients": 8, "requests": 256, "per_request": 8},
)
OUT = Path(__file__).resolve().parent / "results" / "ray-overhead.json"


def sweep_section(work: Path) -> dict[str, Any]:
    from maskctl.experiments.sweep import SweepSettings, run_sweep
    from tests.conftest import build_tiny_model, write_task

    model = build_tiny_model("bert", work / "tiny-bert")
    card = write_task(work / "task")
    settings = {"model": str(model), "task": str(card), "max_steps": 8, "batch_size": 16}
    backends = {
        "local": None,
        "ray 1 trial x 2 CPUs": SweepSettings(sweep_backend="ray", cpus_per_trial=2),
        "ray 2 trials x 1 CPU": SweepSettings(sweep_backend="ray", cpus_per_trial=1),
    }
    walls: dict[str, list[float]] = {name: [] for name in backends}
    points = len(GRID["lr"]) * len(GRID["seed"])
    for round_ in range(SWEEP_ROUNDS):
        for i, (name, backend) in enumerate(backends.items()):
            out = work / f"sweep-{round_}-{i}" / "kw.bundle"
            tick = time.perf_counter()
            result = run_sweep(settings, GRID, output=out, extend=0, backend=backend)
            walls[name].append(time.perf_counter() - tick)
            assert len(result.points) == points and not any(p.reused for p in result.points)
            log(f"sweep round {round_}: {name}: {walls[name][-1]:.1f} s")
    local = median(walls["local"])
    sequential = median(walls["ray 1 trial x 2 CPUs"])
    concurrent = median(walls["ray 2 trials x 1 CPU"])
    return {
        "points": points,
        "settings": settings,
        "walls_s": walls,
        "local_s": local,
        "ray_sequential_s": sequential,
        "ray_concurrent_s": concurrent,
        "local_s_per_point": local / points,
        "overhead_s_per_trial": (sequential - local) / points,
        "ray_sequential_over_local": sequential / local,
        "ray_concurrent_over_local": concurrent / local,
    }


def _bundles(work: Path) -> Path:
    """4 bbc-news tasks on the packaged MiniLM: one short real run, then flipped variants."""
    from bench.serving_tasks import make_bundles
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    real = work / "serving" / "real.bundle"
    if not real.exists():
        log("serving: a short real bbc-news bundle (8 steps) ...")
        train(
            TrainArgs(
                task="bbc-news", output=str(real), max_steps=8, max_train_samples=128, device="cpu", overwrite=True
            )
        )
    folder = work / "ray-masks"
    folder.mkdir(exist_ok=True)
    for path in make_bundles(work / "serving", None, TASKS, real=real):
        shutil.copy(path, folder / path.name)
    return folder


def _rate(
    url: str, prefix: str, requests: list[tuple[str, str]], load: dict[str, Any], batches: bool = True
) -> dict[str, Any]:
    """The load's rate on ``url + prefix``, and the mean batch the server formed (its Prometheus
    counters; with several replicas ``/metrics`` is one replica's, so that figure is left out)."""
    import httpx

    from bench.http_load import mixed_body

    def encode(items: list[tuple[str, str]]) -> tuple[str, bytes]:
        path, body = mixed_body(items)
        return prefix + path, body

    before = httpx.get(f"{url}{prefix}/metrics").text if batches else ""
    rate = asyncio.run(_load(url, requests, load["clients"], load["per_request"], encode=encode))
    if batches:
        count = _metric(httpx.get(f"{url}{prefix}/metrics").text, "maskctl_batch_inputs_count") - _metric(
            before, "maskctl_batch_inputs_count"
        )
        rate["mean_batch"] = len(requests) / count if count else None
    return rate


PLAIN = {"maskctl serve, 1 thread": 1, "maskctl serve, 2 threads": 2}
RAY = {
    "Ray Serve, 1 replica x 1 thread": (1, 1),
    "Ray Serve, 1 replica x 2 threads": (1, 2),
    "Ray Serve, 2 replicas x 1 thread": (2, 1),
}
PAIRS = (
    ("Ray Serve, 1 replica x 1 thread", "maskctl serve, 1 thread"),  # Ray's cost at equal compute
    ("Ray Serve, 1 replica x 2 threads", "maskctl serve, 2 threads"),
    ("Ray Serve, 2 replicas x 1 thread", "Ray Serve, 1 replica x 2 threads"),
)


def serve_section(work: Path) -> dict[str, Any]:
    """``maskctl serve`` at 1 and 2 torch threads (own processes) and three Ray Serve applications
    behind one proxy (1 replica x 1 thread, 1 x 2, 2 x 1), all up at once and measured in turn,
    round by round in a rotating order, so that the load other jobs put on the machine falls on
    all alike; each ratio is taken per round."""
    from ray import serve

    from bench.serving_tasks import texts
    from maskctl.serving.http import ray as on_ray
    from maskctl.serving.http.settings import ServeSettings

    folder = _bundles(work)
    names = [f"news-{i:04d}" for i in range(TASKS)]
    pool = texts(False)
    servers: dict[str, tuple[str, str]] = {}
    plain = contextlib.ExitStack()
    processes = []
    out: dict[str, Any] = {"tasks": TASKS, "rounds": SERVE_ROUNDS, "loads": {}}
    try:
        for key, threads in PLAIN.items():
            options = ("--threads", str(threads), "--watch-seconds", "0")
            process, url = plain.enter_context(serve_process(folder, *options))
            processes.append(process)
            servers[key] = (url, "")
        ray_port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": ray_port}, logging_config={"log_level": "WARNING"})
        for i, (key, (replicas, threads)) in enumerate(RAY.items()):
            settings = on_ray._for_replicas(
                ServeSettings(
                    paths=[str(folder)],
                    ray=True,
                    replicas=replicas,
                    threads=threads,
                    device="cpu",
                    watch_seconds=0,
                    log_level="warning",
                )
            )
            tick = time.perf_counter()
            serve.run(
                on_ray._application(serve, settings),
                name=f"app{i}",
                route_prefix=f"/app{i}",
                logging_config={"log_level": "WARNING", "enable_access_log": False},
            )
            out.setdefault("deploy_s", {})[key] = time.perf_counter() - tick
            servers[key] = (f"http://127.0.0.1:{ray_port}", f"/app{i}")
        keys = list(servers)
        for load in LOADS:
            rng = random.Random(load["clients"])
            requests = [(rng.choice(names), rng.choice(pool)) for _ in range(load["requests"])]
            for url, prefix in servers.values():  # warm-up
                _rate(url, prefix, requests[:32], load, batches=False)
            rounds = []
            for i in range(SERVE_ROUNDS):
                order = keys[i % len(keys) :] + keys[: i % len(keys)]
                rounds.append(
                    {key: _rate(*servers[key], requests, load, batches="2 replicas" not in key) for key in order}
                )
            row: dict[str, Any] = {"rounds": rounds, "inputs": load["requests"], "servers": {}, "pairs": {}}
            for key in keys:
                row["servers"][key] = {
                    "inputs_per_s": median([r[key]["inputs_per_s"] for r in rounds]),
                    "p50_ms": median([r[key]["p50_ms"] for r in rounds]),
                    "mean_batch": median([r[key].get("mean_batch") or 0 for r in rounds]),
                    "failures": sum(r[key]["failures"] for r in rounds),
                }
            for a, b in PAIRS:
                ratios = [r[a]["inputs_per_s"] / r[b]["inputs_per_s"] for r in rounds]
                row["pairs"][f"{a} / {b}"] = {"ratio": median(ratios), "range": [min(ratios), max(ratios)]}
            name = f"{load['clients']} clients x {load['per_request']} input{'s' * (load['per_request'] > 1)}"
            out["loads"][name] = row
            log(
                f"serve {name}: "
                + "; ".join(
                    f"{k}: {v['inputs_per_s']:.1f}/s batch {v['mean_batch']:.1f}" for k, v in row["servers"].items()
                )
            )
            log(
                f"serve {name}: "
                + "; ".join(
                    f"{k} = {v['ratio']:.2f} ({v['range'][0]:.2f}-{v['range'][1]:.2f})" for k, v in row["pairs"].items()
                )
            )
    finally:
        plain.close()
        out["maskctl_serve_exit_codes"] = [process.returncode for process in processes]
        serve.shutdown()
    return out


def main() -> None:
    import argparse

    import ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("sweep", "serve"), help="run one of the two parts")
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()

    from bench.common import machine_info

    work = Path(tempfile.mkdtemp(prefix="maskctl-ray-bench-"))
    started = time.perf_counter()
    load_before = os.getloadavg()
    tick = time.perf_counter()
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="warning"
    )
    results: dict[str, Any] = {"ray_init_s": time.perf_counter() - tick, "ray_version": ray.__version__}
    try:
        if options.only != "serve":
            results["sweep"] = sweep_section(work)
        if options.only != "sweep":  # logical CPUs for the three deployments at once, measured one at a time
            ray.shutdown()
            ray.init(
                address="local",
                num_cpus=5,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                logging_level="warning",
            )
            results["serve"] = serve_section(work)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    results.update(
        wall_s=time.perf_counter() - started,
        load=[load_before, os.getloadavg()],
        machine=machine_info(),
        ray_serve_env={k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE_")},
    )
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    log(f"wrote {options.out} in {results['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
