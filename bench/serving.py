"""``bench/run.py --serving``: many tasks from one model, maskctl against PEFT LoRA.

1. Each point (model size, task count) runs each contender in a fresh process in its default
   settings (``serving_child``): total RSS with every task hot, texts/s of mixed and single-task
   batches, short and long texts. maskctl's process waits on OpenMP passively, as ``maskctl
   serve`` sets it up (``maskctl/openmp.py``); LoRA's keeps libgomp's default. ``ROUNDS``
   rounds (``--rounds``), the contenders' order swapped each round, the median texts/s of the
   rounds; LoRA's adapters are added as far as PEFT loads them in
   ``serving_child.LORA_LOAD_SECONDS``.
2. The term alone (``bench/kernel.py``): useful multiply-adds per second per layer and group
   size, against the dense product of the same rows.
3. Single-task throughput against the merged model (``load_masked``: what ``maskctl eval``
   runs), alternating in one process.

Task bundles: ``serving_tasks``: variants of a real bbc-news bundle flipping as many bits as
trained ones (``FLIP_FRACTION``); BERT-base size from its shipped config with random weights.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import log, median, run_child, save_results
from bench.serving_tasks import FLIP_FRACTION, bert_base_bundle, bert_base_folder, make_bundles, texts
from maskctl.cli.progress import pace
from maskctl.openmp import VARIABLE

POINTS = {"minilm": (16, 200, 1000), "bert-base": (16, 200)}
ROUNDS = 2
BATCH = 16


def bench_points(model: str | None, paths: list[Path], counts, rounds: int = ROUNDS) -> dict[str, Any]:
    """``{count: {"maskctl": [child answers], "lora": [...]}}``, contenders alternating."""
    out: dict[str, Any] = {}
    counts = [c for c in counts if c <= len(paths)]
    children, done, started = 2 * rounds * len(counts), 0, time.monotonic()
    for count in counts:
        row: dict[str, Any] = {"maskctl": [], "lora": []}
        for r in range(rounds):
            for method in ("maskctl", "lora") if r % 2 == 0 else ("lora", "maskctl"):
                # children at higher counts take longer: the time left is a lower bound
                log(
                    f"serving: {count} tasks, {method}, child {done + 1} of {children}"
                    + (f" ({pace(done, children, time.monotonic() - started, 'children')})" if done else "")
                )
                payload = {"method": method, "count": count, "model": model, "paths": [str(p) for p in paths]}
                try:
                    env = {VARIABLE: os.environ.get(VARIABLE, "PASSIVE")} if method == "maskctl" else {}
                    row[method].append(run_child("serving", payload, timeout=3600, env=env))
                except RuntimeError as exc:  # without peft (or a crash) the reason is the result
                    row[f"{method}_error"] = str(exc)[-400:]
                    log(f"serving: {method} at {count} tasks failed: {str(exc)[-300:]}")
                done += 1
        out[str(count)] = row
        log(
            f"serving: {count} tasks: "
            + "; ".join(
                f"{m} RSS {a[-1]['hot']['rss_mib']:.0f} MiB, "
                + ", ".join(f"{k} {v:.0f}/s" for k, v in a[-1]["texts_per_s"].items())
                for m, a in row.items()
                if isinstance(a, list) and a
            )
        )
    return out


def bench_single_vs_merged(model: str | None, path: Path, rounds: int = 4, block: int = 6) -> dict[str, Any]:
    """Single-task throughput of MaskedModel against the merged model (encode + forward)."""
    from maskctl.bundle.format import load_bundle
    from maskctl.serving import MaskedModel
    from maskctl.serving.loading import load_masked
    from maskctl.serving.results import example_from_input

    served = MaskedModel.from_bundles([path], model=model, device="cpu")
    merged = load_masked(load_bundle(path), model=model)
    task, tokenizer = merged.task, merged.tokenizer
    out = {}
    for length, pool in {"short": texts(False), "long": texts(True)}.items():
        rng = random.Random(0)

        def old(rng: random.Random = rng, pool: list[str] = pool) -> None:
            examples = [example_from_input(task, t) for t in (rng.choice(pool) for _ in range(BATCH))]
            features = task.kind.encode(task.card, tokenizer, examples, 128, {"word_piece": "last"})
            batch = task.kind.collate(tokenizer)(features.items)
            with torch.inference_mode():
                merged.model(**{k: v for k, v in batch.items() if k != "labels"})

        def new(rng: random.Random = rng, pool: list[str] = pool) -> None:
            served.predict(task.name, [rng.choice(pool) for _ in range(BATCH)], batch_size=BATCH)

        times: dict[str, list[float]] = {"new": [], "old": []}
        new(), new(), old()
        for r in range(rounds):
            for name, fn in (("new", new), ("old", old)) if r % 2 == 0 else (("old", old), ("new", new)):
                for _ in range(block):
                    tick = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - tick)
        out[length] = {
            "new_over_old": median(times["old"]) / median(times["new"]),
            "texts_per_s": {k: BATCH / median(v) for k, v in times.items()},
        }
    return out


def serving_section(
    model: str | None,
    work: Path,
    tasks: int = 1000,
    parts: tuple[str, ...] = ("minilm", "bert-base"),
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """Every part above; a failed BERT-base part is recorded, the MiniLM results kept."""
    result: dict[str, Any] = {"batch": BATCH, "flip_fraction": FLIP_FRACTION, "rounds": rounds, "points": {}}
    if "minilm" in parts:
        paths = make_bundles(work / "serving", model, tasks)
        # the term alone, in a process that waits on OpenMP as maskctl serve's does
        result["kernel"] = run_child(
            "kernel",
            {"flip_fraction": FLIP_FRACTION},
            timeout=3600,
            env={VARIABLE: os.environ.get(VARIABLE, "PASSIVE")},
        )
        result["single_vs_merged"] = bench_single_vs_merged(model, paths[0])
        log(f"serving: single vs merged {result['single_vs_merged']}")
        result["points"]["minilm"] = bench_points(model, paths, [c for c in POINTS["minilm"] if c <= tasks], rounds)
    if "bert-base" in parts:
        try:
            folder = bert_base_folder(work)
            counts = [c for c in POINTS["bert-base"] if c <= tasks]  # --serving-tasks bounds both sizes
            base_paths = make_bundles(
                work / "serving-bert-base", str(folder), max(counts), real=bert_base_bundle(work, folder)
            )
            result["points"]["bert-base"] = bench_points(str(folder), base_paths, counts, rounds)
        except Exception as exc:  # noqa: BLE001 - the MiniLM results above are kept; the reason is the result
            result["bert_base_error"] = f"{type(exc).__name__}: {exc}"[:500]
    return result


def _median_of(answers: list[dict[str, Any]], *keys: str) -> float | None:
    values = []
    for answer in answers:
        value: Any = answer
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return median(values) if values else None


def point_lines(points: dict[str, Any]) -> list[str]:
    """Memory and throughput, maskctl against LoRA, per model size and task count."""
    memory = [
        (
            "| model | tasks | maskctl total RSS (MiB) | LoRA total RSS (MiB) | maskctl / LoRA | maskctl base + "
            "per task | LoRA base + per adapter |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    speed = [
        (
            "| model | tasks | texts | maskctl mixed | LoRA mixed | **mixed, maskctl / LoRA** | maskctl single | "
            "maskctl mixed / single | LoRA single |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, rows in points.items():
        for count, row in rows.items():
            mask, lora = row.get("maskctl") or [], row.get("lora") or []
            m_rss, l_rss = _median_of(mask, "hot", "rss_mib"), _median_of(lora, "hot", "rss_mib")
            loaded = min((a["loaded"] for a in lora), default=None)
            lora_cell = (
                f"{l_rss:.0f}" + (f" ({loaded} adapters)" if loaded and loaded < int(count) else "")
                if l_rss
                else str(row.get("lora_error", ""))[:60]
            )
            per = [
                (_median_of(a, "base", "rss_mib"), rss, n)
                for a, rss, n in ((mask, m_rss, int(count)), (lora, l_rss, loaded or int(count)))
            ]
            cells = [f"{b:.0f} + {(r - b) * 2**20 / max(n - 1, 1) / 1e6:.3f} MB" if b and r else "" for b, r, n in per]
            memory.append(
                f"| {size} | {count} | {m_rss:.0f} | {lora_cell} | "
                f"{f'**{m_rss / l_rss:.2f}**' if m_rss and l_rss else ''} | {cells[0]} | {cells[1]} |"
                if m_rss
                else f"| {size} | {count} | {str(row.get('maskctl_error', ''))[:60]} | | | | |"
            )
            for length in ("short", "long"):
                m = {mode: _median_of(mask, "texts_per_s", f"{mode}/{length}") for mode in ("mixed", "single")}
                lo = {mode: _median_of(lora, "texts_per_s", f"{mode}/{length}") for mode in ("mixed", "single")}
                if m["mixed"] is None:
                    continue
                ratio = f"**{m['mixed'] / lo['mixed']:.2f}**" if lo["mixed"] else ""
                speed.append(
                    f"| {size} | {count} | {length} | {m['mixed']:.1f} | "
                    f"{lo['mixed'] or float('nan'):.1f} | {ratio} | {m['single']:.1f} | "
                    f"{m['mixed'] / m['single']:.2f} | {lo['single'] or float('nan'):.1f} |"
                )
    return [
        "Total memory with every task hot (each contender a fresh process in its default settings):",
        "",
        *memory,
        "",
        "Texts per second, batches of 16 (median of the rounds):",
        "",
        *speed,
    ]


def write_serving(results: dict[str, Any], out: Path) -> Path:
    """``results-<mode>.json`` and the tables of ``results-<mode>.md``."""
    from bench.kernel import kernel_lines

    mode = results["mode"]
    s = results["sections"][mode]
    lines = [
        (
            f"{save_results(results, out, mode)} Task variants flip {s['flip_fraction']:.1%} of the masked "
            "weights against their initial mask, as trained bbc-news bundles do."
        ),
        "",
    ]
    lines += [f"Rounds per point: {s.get('rounds', ROUNDS)}.", ""] + point_lines(s["points"])
    if "kernel" in s:
        lines += ["", "The term alone (`bench/kernel.py`):", ""] + kernel_lines(s["kernel"])
    if "single_vs_merged" in s:
        lines += ["", "Single-task throughput against the merged model (encode + forward):", ""]
        for length, row in s["single_vs_merged"].items():
            lines.append(
                f"- {length}: {row['texts_per_s']['new']:.1f} vs {row['texts_per_s']['old']:.1f} texts/s "
                f"= **{row['new_over_old']:.3f}**"
            )
    if "bert_base_error" in s:
        lines += ["", f"BERT-base rows: not measured ({s['bert_base_error'][:200]})."]
    path = out / f"results-{mode}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
