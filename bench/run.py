#!/usr/bin/env python
"""maskctl benchmarks: masking against finetuning (and PEFT LoRA) on the packaged MiniLM.

    .venv/bin/python bench/run.py [--quick|--quality-full|--tagging] [--out bench/results]
    .venv/bin/python bench/run.py --quality [--tasks wnut16,bbc-news]   # bench/quality_search.py

writes ``<out>/results-<mode>.json`` and ``<out>/results-<mode>.md`` (mode: quick, default,
full or tagging). What is measured (bench/README.md has the details), and where:

1. masked / finetune training step time (batch 32 x 128 tokens, real bbc-news articles),
   median of alternating steps after warm-up, in one process (``speed``);
2. masked / finetune peak RSS of a training process, each in a fresh subprocess (``speed``);
3. merged-mask / base inference throughput, alternating batches in one process (``speed``);
4. time to apply one bundle to a resident base model (read + decode + merge), MiniLM and a
   random BERT-base-shaped model (``apply``);
5. peak RSS of a 4-bundle ensemble / a 1-bundle eval, each in a fresh subprocess (``ensemble_memory``);
6. bundle bits per masked weight against the binary entropy H(p) of the mask (``bits``);
7. masking vs finetuning quality on bbc-news and wnut16, 3 seeds (maskctl's trainer) (``quality``);
8. the alternative users would pick: PEFT LoRA (r=8 on query/value, trained classifier) (``lora``).

``common`` holds what they share, ``report`` the goals and the table; this file the modes, the
order of the sections and the command line, including the hidden ``--child`` entry that
``common.run_child`` re-executes for the memory figures.

Timings are noisy on a shared machine: every ratio is measured side by side in one process,
alternating the two contenders step by step (and which goes first), and the load average
is recorded with the results. Nothing here changes maskctl; the library is only called.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# `python bench/run.py` puts bench/ itself first on sys.path, where its modules (common, report, ...)
# would shadow any top-level module of the same name. The repository root takes its place: `bench.*`
# imports from there, and so does maskctl from a checkout without `pip install -e .`.
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == HERE:
    sys.path[0] = str(REPO)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.apply import bench_apply_models
from bench.bits import bits_section
from bench.common import loadavg, log, machine_info
from bench.ensemble_memory import child_eval_memory, ensemble_section
from bench.kernel import bench_kernel
from bench.lora import bench_lora, lora_reference
from bench.quality import bench_quality
from bench.report import write_results
from bench.serving import write_serving
from bench.serving_child import child_serving
from bench.speed import (
    bench_inference,
    bench_step_time,
    bench_train_memory,
    child_train_memory,
)

# Settings per mode. "default" is sized for under 15 minutes on a 2-core CPU (885 s measured; bbc-news at
# 64 tokens so that one full epoch fits; wnut16 one short epoch, which is a pipeline check only:
# entity F1 stays 0 until several epochs); "full" uses the task cards' own epochs at 128 tokens.
MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "warmup": 1,
        "steps": 5,
        "infer_steps": 10,
        "mem_steps": 2,
        "apply_repeats": 5,
        "bert_base": False,
        "quality": None,
        "lora": None,
    },
    "default": {
        "warmup": 2,
        "steps": 7,
        "infer_steps": 10,
        "mem_steps": 3,
        "apply_repeats": 7,
        "bert_base": True,
        "quality": {
            "bbc-news": {"epochs": 1, "max_train_samples": None, "max_length": 64},
            "wnut16": {"epochs": 1, "max_train_samples": 512, "max_length": 128},
        },
        "seeds": (0, 1, 2),
        "lora": {"task": "bbc-news", "epochs": 1, "max_train_samples": None, "max_length": 64},
    },
    # wnut16 needs several epochs before entity F1 leaves 0 (shared/paper probe): 5 epochs over all
    # 1,675 training tweets, masking, finetuning and LoRA, 3 seeds. Runs ~20 minutes on its own.
    "tagging": {
        "only": {"quality", "lora"},
        "bert_base": False,
        "quality": {"wnut16": {"epochs": 5, "max_train_samples": None, "max_length": 64}},
        "seeds": (0, 1, 2),
        "lora": {"task": "wnut16", "epochs": 5, "max_train_samples": None, "max_length": 64},
    },
    "full": {
        "warmup": 2,
        "steps": 10,
        "infer_steps": 12,
        "mem_steps": 3,
        "apply_repeats": 9,
        "bert_base": True,
        "quality": {
            "bbc-news": {"epochs": None, "max_train_samples": None, "max_length": 128},
            "wnut16": {"epochs": None, "max_train_samples": None, "max_length": 128},
        },
        "seeds": (0, 1, 2),
        "lora": {"task": "bbc-news", "epochs": None, "max_train_samples": None, "max_length": 128},
    },
}


def run_all(
    mode: str, out: Path, model: str | None = None, work: Path | None = None, only: set[str] | None = None
) -> dict[str, Any]:
    """Run the sections of ``mode`` (or those in ``only``) in order, writing the results after each.

    Quality runs before apply, ensemble memory, bits and LoRA because they reuse its trained
    bundles; a section that raises is recorded as ``{"error": ...}`` and the others still run.
    """
    cfg = MODES[mode]
    only = only or cfg.get("only")
    started = time.perf_counter()
    own_work = work is None
    work = Path(work or tempfile.mkdtemp(prefix="maskctl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "mode": mode,
        "settings": {k: v for k, v in cfg.items()},
        "machine": machine_info(),
        "load_start": loadavg(),
        "sections": {},
        "section_wall_s": {},
    }
    log(f"mode {mode}; work files in {work}")

    def section(name: str, fn: Callable[[], Any]) -> Any:
        if only and name not in only:
            return None
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - one failing figure must not lose the others
            traceback.print_exc()
            value = {"error": f"{type(exc).__name__}: {exc}"}
        results["section_wall_s"][name] = time.perf_counter() - t0
        results["sections"][name] = value
        log(f"{name} done in {results['section_wall_s'][name]:.0f} s")
        write_results(results, out, mode, started)
        return value

    section("step_time", lambda: bench_step_time(model, "bbc-news", 32, 128, cfg["warmup"], cfg["steps"]))
    section("train_memory", lambda: bench_train_memory(model, "bbc-news", 32, 128, cfg["mem_steps"]))
    section("inference", lambda: bench_inference(model, "bbc-news", 32, 128, cfg["warmup"], cfg["infer_steps"]))
    quality = None
    if cfg.get("quality"):
        quality = section("quality", lambda: bench_quality(cfg["quality"], tuple(cfg["seeds"]), work, model))
    else:
        results["sections"]["quality"] = {"skipped": "--quick mode"}
    trained: dict[str, list[Path]] = {}
    if quality and "error" not in quality and "skipped" not in quality:
        trained = {task: [Path(run["output"]) for run in q["runs"]["mask"]] for task, q in quality.items()}
    section(
        "apply",
        lambda: bench_apply_models(
            model, "bbc-news", work, cfg["apply_repeats"], cfg["bert_base"], (trained.get("bbc-news") or [None])[0]
        ),
    )
    section("ensemble_memory", lambda: ensemble_section(trained, model, work))
    section("bits", lambda: bits_section(trained, results["sections"].get("apply") or {}))
    if cfg.get("lora"):
        lc = cfg["lora"]
        section(
            "lora",
            lambda: bench_lora(
                model,
                lc["task"],
                0,
                lc["epochs"],
                lc["max_train_samples"],
                max_length=lc.get("max_length", 128),
                work=work,
                reference=lora_reference(quality, lc),
            ),
        )
    else:
        results["sections"]["lora"] = {"skipped": "--quick mode"}
    results["load_end"] = loadavg()
    results["wall_s"] = time.perf_counter() - started
    write_results(results, out, mode, started)
    if own_work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    log(f"done in {results['wall_s']:.0f} s: {out}/results-{mode}.json and .md")
    return results


# `run.py --child NAME` runs one of these in a fresh interpreter (common.run_child) for the memory figures.
CHILDREN = {
    "train-memory": lambda a: child_train_memory(
        a["method"], a["model"], a["task"], a["batch_size"], a["length"], a["steps"]
    ),
    "eval-memory": lambda a: child_eval_memory(a["paths"], a["split"]),
    "serving": child_serving,
    "kernel": lambda a: bench_kernel(a["flip_fraction"]),
}


def _section_mode(mode: str, section, writer, args) -> int:
    """A mode that is one section (``--serving``, ``--http``, ``--tenants``): run it in a work
    folder, wrap it with the machine and its load before and after, write its results."""
    work = Path(args.work or tempfile.mkdtemp(prefix=f"maskctl-{mode}-"))
    started = time.perf_counter()
    results = {"mode": mode, "machine": machine_info(), "load_start": loadavg(), "sections": {mode: section(work)}}
    results["load_end"], results["wall_s"] = loadavg(), time.perf_counter() - started
    writer(results, Path(args.out))
    return 0


def _seeds(text: str) -> tuple[int, ...]:
    """``0-4`` or ``5,7,9`` as a tuple of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return tuple(seeds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 3 min): fewer steps, no quality or LoRA")
    parser.add_argument(
        "--quality-full",
        action="store_true",
        help="quality and LoRA with the task defaults (bbc-news 3 epochs, wnut16 15 epochs)",
    )
    parser.add_argument(
        "--tagging", action="store_true", help="figures 7-8 on wnut16 with 5 epochs over all tweets, 3 seeds (~20 min)"
    )
    parser.add_argument(
        "--quality",
        action="store_true",
        help="masking vs finetuning vs LoRA with tuned settings, 3 seeds, test split (hours; resumable)",
    )
    parser.add_argument("--tasks", default="wnut16,bbc-news", help="--quality: comma-separated tasks")
    parser.add_argument(
        "--runs",
        default=None,
        help="--quality: only these settings, in order: finetune, mask, mask:<variant>, mask:@budgets (the flip front), "
        "mask:@fewest-flips (comma-separated)",
    )
    parser.add_argument("--seeds", default=None, help="--quality --runs: seeds, e.g. 0-4 or 5,6 (default 0-4)")
    parser.add_argument(
        "--backfill-flips",
        action="store_true",
        help="--quality --runs: rerun finished masking runs whose record lacks the flip fraction",
    )
    parser.add_argument(
        "--serving",
        action="store_true",
        help="many tasks from one model vs PEFT LoRA, each in a fresh process: total memory and "
        "texts/s at 16, 200 and 1,000 MiniLM tasks and 16 and 200 BERT-base ones; the kernel",
    )
    parser.add_argument("--serving-tasks", type=int, default=1000, help="--serving*: the largest task count to run")
    parser.add_argument(
        "--rounds", type=int, default=2, help="--serving*: rounds per point, the contenders' order swapped each round"
    )
    parser.add_argument(
        "--serving-minilm",
        action="store_true",
        help="only the MiniLM part of --serving: 16, 200 and 1,000 tasks, the kernel",
    )
    parser.add_argument(
        "--serving-bert-base", action="store_true", help="only the BERT-base part of --serving: 16 and 200 tasks"
    )
    parser.add_argument(
        "--kernel",
        action="store_true",
        help="the served masks' term alone against the dense product, per layer and group size (~2 min)",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="maskctl serve under a bounded loopback load vs MaskedModel directly (~10 min)",
    )
    parser.add_argument(
        "--tenants",
        action="store_true",
        help="maskctl serve against a hostile client, a 10,000-input stream, a corrupt overwrite, "
        "TEI/OIP routes and SIGTERM with a stalled upload (~5 min)",
    )
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for results-<mode>.json/.md")
    parser.add_argument("--model", default=None, help="base model (default: the packaged MiniLM)")
    parser.add_argument("--work", default=None, help="keep bundles and finetuned models here (default: a temp dir)")
    parser.add_argument("--only", default=None, help="comma-separated sections, e.g. step_time,inference")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-args", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        answer = CHILDREN[args.child](json.loads(args.child_args))
        Path(args.child_out).write_text(json.dumps(answer), encoding="utf-8")
        return 0
    if args.quality:
        from bench.quality_search import main as quality_main

        work = Path(args.work or tempfile.mkdtemp(prefix="maskctl-quality-"))
        return quality_main(
            args.tasks.split(","),
            Path(args.out),
            work,
            args.model,
            args.runs.split(",") if args.runs else None,
            _seeds(args.seeds) if args.seeds else None,
            backfill=args.backfill_flips,
        )
    for flag, part in (("serving_minilm", "minilm"), ("serving_bert_base", "bert-base")):
        if getattr(args, flag):
            from bench.serving import serving_section

            return _section_mode(
                f"serving-{part}",
                lambda work, part=part: serving_section(
                    args.model, work, args.serving_tasks, parts=(part,), rounds=args.rounds
                ),
                write_serving,
                args,
            )
    if args.serving:
        from bench.serving import serving_section

        return _section_mode(
            "serving",
            lambda work: serving_section(args.model, work, args.serving_tasks, rounds=args.rounds),
            write_serving,
            args,
        )
    if args.kernel:
        from bench.kernel import bench_kernel, write_kernel
        from bench.serving_tasks import FLIP_FRACTION

        return _section_mode("kernel", lambda work: bench_kernel(FLIP_FRACTION), write_kernel, args)
    if args.http:
        from bench.http_load import http_section, write_http

        return _section_mode("http", lambda work: http_section(args.model, work), write_http, args)
    if args.tenants:
        from bench.http_tenants import tenants_section, write_tenants

        return _section_mode("tenants", lambda work: tenants_section(args.model, work), write_tenants, args)
    modes = [name for name, on in (("quick", args.quick), ("full", args.quality_full), ("tagging", args.tagging)) if on]
    if len(modes) > 1:
        parser.error("--quick, --quality-full and --tagging exclude each other")
    mode = modes[0] if modes else "default"
    only = set(args.only.split(",")) if args.only else None
    run_all(mode, Path(args.out), args.model, Path(args.work) if args.work else None, only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
