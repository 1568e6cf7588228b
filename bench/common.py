"""What every figure shares: logging, medians, memory readers, the machine record, the models and
batches built exactly as ``maskctl train`` builds them, and the side-by-side timing loop.

Kept in one place so that all figures measure the same way: a ratio is only fair if both
contenders are loaded, stepped and timed by the same code.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from maskctl.cli.progress import HEARTBEAT_S, duration

# The entry point that ``run_child`` re-executes with ``--child``.
RUN_SCRIPT = Path(__file__).resolve().parent / "run.py"


# ----------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB: ``VmHWM``, the high-water mark of its
    address space. ``getrusage``'s ``ru_maxrss`` is not used for the figures: on Linux it keeps
    the larger of this and the parent's RSS at fork time across ``exec``, so a child started by
    a parent holding two models would report the parent's size."""
    value = _proc_status("VmHWM")
    return value if not math.isnan(value) else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _proc_status(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def rss_mib() -> float:
    return _proc_status("VmRSS")


def anon_mib() -> float:
    """Resident memory the process alone owns (RSS less shared-library and file pages)."""
    return _proc_status("RssAnon")


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(statistics.fmean(values)), float(statistics.stdev(values)) if len(values) > 1 else 0.0


def slug(task: str) -> str:
    """A file-name-safe name for a task name or a card path."""
    return Path(task).stem if task.endswith((".yaml", ".yml")) else task.replace("/", "_")


def dir_bytes(path: Path) -> tuple[int, int]:
    """(total bytes, file count) of a file or a folder tree."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size, 1
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    for name in ("transformers", "numpy", "peft", "accelerate"):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            info[name] = f"unavailable ({type(exc).__name__})"
    import maskctl

    info["maskctl"] = maskctl.__version__
    info["cuda"] = torch.cuda.is_available()
    return info


# ----------------------------------------------------------------------------- models and data


def load_task(task: str):
    """maskctl's task object for a task name or a card path."""
    from maskctl.tasks.task import get_task

    return get_task(task)


def load_model(model: str | None, task: str, seed: int = 0):
    """(model, new_keys, source, task) exactly as the trainer loads it: the task head included."""
    from maskctl.models import load_task_model, resolve_model

    source = resolve_model(model)
    t = load_task(task)
    torch.manual_seed(seed)
    net, new_keys = load_task_model(source, t.kind.auto_class, t.labels)
    return net, new_keys, source, t


def fixed_batch(model: str | None, task: str, batch_size: int, length: int) -> dict[str, torch.Tensor]:
    """``batch_size`` real training examples of ``task`` at exactly ``length`` tokens.

    Long examples are cut at ``length`` (bbc-news articles all are); shorter ones are padded
    to it, so every step does the same work.
    """
    from transformers import DataCollatorWithPadding

    from maskctl.models import load_tokenizer, resolve_model

    t = load_task(task)
    tokenizer = load_tokenizer(resolve_model(model), **t.kind.tokenizer_kwargs)
    features = t.features("train", tokenizer, length, limit=max(batch_size * 4, 64))
    items = sorted(features.items, key=lambda item: -len(item["input_ids"]))[:batch_size]
    while len(items) < batch_size:  # a tiny task: repeat examples
        items = items + items[: batch_size - len(items)]
    collate = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=length, return_tensors="pt")
    return collate(items)


def build_trainee(method: str, model: str | None, task: str, seed: int = 0):
    """(model, optimizer) as ``maskctl train`` builds them for ``method`` (``bench.baselines``)."""
    from bench.baselines import maskctl_trainee

    net, new_keys, *_ = load_model(model, task, seed)
    net, optimizer = maskctl_trainee(method, net, new_keys, seed)
    net.train()
    return net, optimizer


# ----------------------------------------------------------------------------- side-by-side timing


def train_step(net, optimizer, batch) -> dict[str, float]:
    """One optimisation step; wall seconds of forward, backward, optimizer, and CPU seconds."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    loss = net(**batch).loss
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    return {
        "total": t3 - t0,
        "forward": t1 - t0,
        "backward": t2 - t1,
        "optimizer": t3 - t2,
        "cpu": time.process_time() - cpu0,
    }


def alternate(contenders: dict[str, Callable[[], dict[str, float]]], warmup: int, steps: int) -> dict[str, list[dict]]:
    """Run each contender once per round, swapping the order every round; drop warm-up rounds."""
    names = list(contenders)
    samples: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(warmup + steps):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            result = contenders[name]()
            if round_ >= warmup:
                samples[name].append(result)
    return samples


def summarise(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = samples[0].keys() if samples else []
    return {f"median_{k}_s": median([s[k] for s in samples]) for k in keys} | {
        "min_total_s": min(s["total"] for s in samples) if samples else float("nan"),
        "n": len(samples),
    }


def pair_ratio(a: list[dict], b: list[dict], key: str = "total") -> float:
    """Median over rounds of a[i] / b[i]: each pair ran back to back, so it shares the load."""
    return median([x[key] / y[key] for x, y in zip(a, b)])


# ----------------------------------------------------------------------------- fresh processes


def wait_with_heartbeat(proc: subprocess.Popen, name: str, timeout: float) -> str:
    """Wait for ``proc`` (its output piped), logging a line at least every ``HEARTBEAT_S`` seconds
    as maskctl's own long work does (a child may run for many minutes); kill it after
    ``timeout`` seconds (``subprocess.TimeoutExpired``). Returns its stderr."""
    started = time.monotonic()
    while True:
        try:
            return proc.communicate(timeout=max(0.0, min(HEARTBEAT_S, timeout - (time.monotonic() - started))))[1]
        except subprocess.TimeoutExpired:
            if time.monotonic() - started >= timeout:
                proc.kill()
                proc.communicate()
                raise
            log(f"{name}: running for {duration(time.monotonic() - started)}")


def run_child(
    kind: str, payload: dict[str, Any], timeout: float = 1800, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``kind`` in a fresh interpreter (``run.py --child``, see its ``CHILDREN``) with ``env``
    added to the environment, and return its JSON answer: peak memory is only comparable between
    processes that start from nothing."""
    with tempfile.TemporaryDirectory(prefix="maskctl-bench-") as tmp:
        out = Path(tmp) / "answer.json"
        cmd = [
            sys.executable,
            str(RUN_SCRIPT),
            "--child",
            kind,
            "--child-args",
            json.dumps(payload),
            "--child-out",
            str(out),
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
        )
        stderr = wait_with_heartbeat(proc, f"child {kind}", timeout)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"child {kind} failed (exit {proc.returncode}): {stderr[-2000:]}")
        return json.loads(out.read_text())


@contextlib.contextmanager
def serve_process(
    folder: Path, *options: str, model: str | None = None, code: Path | None = None
) -> Iterator[tuple[subprocess.Popen, str]]:
    """The real ``maskctl serve`` command in a process of its own on a free loopback port, for
    the benchmarks that measure what a client sees: yields (process, base URL) once it answers
    ``/ready``; SIGTERM on the way out (a kill past 60 s), its exit code in ``returncode``.
    ``code``: a checkout whose maskctl the server imports instead of this one (its working folder
    is then ``folder``, as ``python -m`` puts the working folder first on the path)."""
    from maskctl.serving.http.ports import free_port

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "maskctl", "serve", str(folder), "--port", str(port), "--device", "cpu"]
    command += ["--log-level", "warning", *options] + (["--model", model] if model else [])
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe nobody reads: it never fills
        server = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True, cwd=folder if code else None
        )
        try:
            deadline = time.monotonic() + 300
            while not _answers(f"{url}/ready"):
                if server.poll() is not None or time.monotonic() > deadline:
                    errors.seek(0)
                    raise RuntimeError(f"maskctl serve did not start: {errors.read()[-2000:]}")
                time.sleep(0.2)
            yield server, url
        finally:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(60)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def save_results(results: dict[str, Any], out: Path, mode: str) -> str:
    """Write ``results-<mode>.json`` into ``out``; return the line that opens its Markdown table
    (machine, load before -> after, wall time)."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{mode}.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return (
        f"Machine: {results['machine'].get('cpu', '?')}, load {results.get('load_start')} -> "
        f"{results.get('load_end')}, {results.get('wall_s', 0):.0f} s."
    )
