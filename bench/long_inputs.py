"""``python bench/long_inputs.py``: what one request with a very long text costs the real
``maskctl serve`` in memory (issue 34, item 2), on the packaged MiniLM.

Two bundles trained for one step on small files written here (a classification task and a
4-ending multiple-choice task: their masks do not matter, their encoding does), served by a fresh
``maskctl serve`` process per request kind (``--max-body-kb 4096``, no watching). Each server is
warmed with a short request of the same kind, then sent one long request while a thread reads its
resident set size (``VmRSS``) every 5 ms and another client asks ``/health`` every 10 ms;
reported: the growth over the warm server, at its peak and after the answer, and the slowest
``/health`` meanwhile (item 12: work of a large request kept off the event loop). A server growing past ``--limit-mb`` is killed (the old code reached 24 GB).

``--code DIR`` serves another checkout (its ``maskctl`` first on the server's ``PYTHONPATH``),
which is how the before/after rows of BENCHMARKS.md were taken on the same machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import log, serve_process


def _pair(words: int, word: str = "word ") -> tuple[str, dict[str, Any]]:
    side = word * words
    return "/v1/tasks/news/predict", {"inputs": [[side, side.replace(word, word.upper())]]}


def _choice(words: int) -> tuple[str, dict[str, Any]]:
    part = "word " * words
    return "/v1/tasks/choice/predict", {"inputs": [{"context": part, "endings": [part] * 4}]}


def _text(words: int) -> tuple[str, dict[str, Any]]:
    return "/v1/tasks/news/predict", {"inputs": ["word " * words]}


CASES = {  # --sizes key: (row name, (route, body))
    "text1MB": ("one text, 1 MB", _text(200_000)),
    "7k": ("pair, 2,000 words a side (the issue's 7 kB body)", _pair(2000, "x ")),
    "mc4x1000": ("multiple choice, 4 endings, 1,000 words each and context", _choice(1000)),
    "1MB": ("pair, 1 MB (500 kB a side)", _pair(100_000)),
    "mc1MB": ("multiple choice, 1 MB (context and 4 endings, 200 kB each)", _choice(40_000)),
}


def _bundles(work: Path) -> Path:
    """A served folder with the two bundles (trained once per work folder)."""
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    folder = work / "served"
    folder.mkdir(parents=True, exist_ok=True)
    news, choice = work / "news.csv", work / "choice.jsonl"
    news.write_text(
        "text,label\n"
        + "".join(
            f"{'shares fell' if i % 2 else 'the cup final'} {i},{'business' if i % 2 else 'sport'}\n" for i in range(32)
        )
    )
    choice.write_text(
        "".join(
            json.dumps(
                {
                    "context": f"she opened the door {i}",
                    "endings": ["and walked in.", "and flew.", "and sang.", "and slept."],
                    "label": i % 4,
                }
            )
            + "\n"
            for i in range(32)
        )
    )
    for name, data in (("news", news), ("choice", choice)):
        out = folder / f"{name}.bundle"
        if not out.exists():
            log(f"long inputs: training the {name} bundle (one step) ...")
            train(
                TrainArgs(
                    train_file=str(data), task_name=name, output=str(out), max_steps=1, device="cpu", overwrite=True
                )
            )
    return folder


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _measure(folder: Path, code: Path | None, route: str, body: dict[str, Any], limit_mb: float) -> dict[str, Any]:
    options = ("--max-body-kb", "4096", "--watch-seconds", "0")
    with serve_process(folder, *options, code=code) as (server, url), httpx.Client(timeout=600) as client:
        warm = _short(body)
        for _ in range(3):
            assert client.post(f"{url}{route}", json=warm).status_code == 200
        time.sleep(0.5)
        base = _rss_mb(server.pid)
        peak, done, killed = [base], threading.Event(), [False]

        def watch() -> None:
            while not done.is_set():
                rss = _rss_mb(server.pid)
                peak[0] = max(peak[0], rss)
                if rss - base > limit_mb:
                    killed[0] = True
                    server.kill()
                    return
                time.sleep(0.005)

        probes: list[float] = []

        def probe() -> None:  # another client's /health while the long request is handled
            with httpx.Client(timeout=60) as other:
                while not done.is_set():
                    tick = time.perf_counter()
                    other.get(f"{url}/health")
                    probes.append(time.perf_counter() - tick)
                    time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        started = time.perf_counter()
        try:
            answer = client.post(f"{url}{route}", json=body)
            status = answer.status_code
            truncated = '"truncated": true' in answer.text
        except httpx.HTTPError:
            status, truncated = None, None
        seconds = time.perf_counter() - started
        done.set()
        watcher.join()
        prober.join(60)
        after = None if killed[0] else _rss_mb(server.pid)
        return {
            "base_mb": round(base, 1),
            "peak_growth_mb": round(peak[0] - base, 1),
            "growth_after_mb": None if after is None else round(after - base, 1),
            "status": status,
            "truncated": truncated,
            "seconds": round(seconds, 2),
            "killed_past_mb": limit_mb if killed[0] else None,
            "health_max_ms": round(max(probes, default=0) * 1000, 1),
            "health_probes": len(probes),
        }


def _short(body: dict[str, Any]) -> dict[str, Any]:
    """The same request with every text a few words long (what warms the server up)."""

    def walk(value):
        if isinstance(value, str):
            return "word " * 5
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("bench-work/long-inputs"))
    parser.add_argument("--code", type=Path, default=None, help="serve this checkout instead of the installed maskctl")
    parser.add_argument("--sizes", default=",".join(CASES), help=f"which requests: some of {', '.join(CASES)}")
    parser.add_argument("--limit-mb", type=float, default=3000.0, help="kill a server that grows past this")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    folder = _bundles(args.work)
    rows = {}
    for key in args.sizes.split(","):
        name, (route, body) = CASES[key]
        log(f"long inputs: {name} ...")
        rows[name] = _measure(folder, args.code, route, body, args.limit_mb)
        log(f"  {rows[name]}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
