"""``bench/run.py --serving``, part 3: what a *hot* task costs in memory, maskctl against PEFT LoRA.

Each (contender, task count) runs in a fresh process (``run.py --child hot-memory``): the base
model with one task (one adapter) is loaded and warmed by a batch, then the other tasks are
loaded and every one is made hot by mixed batches of 16 tasks; RSS is read after handing freed
heap back (``malloc_trim``) on both sides. maskctl holds its tasks as flipped positions with
the compiled kernel and no corrections cache (``cache_mb=0``: with room in the cache the default
path would add CSR matrices built from the flips, bounded by ``cache_mb``), or as coded masks
plus CSR corrections (a cache big enough for all) on the plain-PyTorch path; LoRA r=8 on query/value with one classifier per adapter
(``bench.serving.lora_model``), mixed through ``adapter_names``.

The BERT-base rows use random weights from the shipped ``bert-base-uncased`` config (speed and
memory do not depend on trained values) with the packaged MiniLM's tokenizer (the same
uncased 30,522-piece vocabulary) and a bundle trained one step on 16 bbc-news articles, then
varied like the MiniLM ones: the same flip statistics on a model 12x its masked weights.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.common import anon_mib, log, rss_mib, run_child

HOT_COUNTS = (1, 16, 200, 1000)
TEXT = "Shares fell in London as oil prices rose"


def child_hot_memory(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: RSS with one task, then with ``count`` tasks all hot."""
    import os

    from maskctl.serving.memory import release_freed_memory

    if args.get("kernel") == "torch":
        os.environ["MASKCTL_KERNEL"] = "torch"
    count, model = args["count"], args.get("model")
    if args["method"] == "lora":
        return _lora_hot(model, count)
    from maskctl.serving import MaskedModel

    paths = [Path(p) for p in args["paths"][:count]]
    # compiled: no cache, every task in its smallest form (flips); torch: every correction cached
    cache_mb = 0 if args.get("kernel") == "compiled" else 100_000
    served = MaskedModel.from_bundles(paths[:1], model=model, device="cpu", cache_mb=cache_mb)
    served.predict_many([(served.tasks[0], TEXT)] * 16)
    release_freed_memory()
    base, anon = rss_mib(), anon_mib()
    for path in paths[1:]:
        served.load(path)
    names = served.tasks
    for i in range(0, count, 16):
        served.predict_many([(name, TEXT) for name in names[i:i + 16]])
    release_freed_memory()
    hot = rss_mib()
    first = served._tasks[names[0]]  # the bench reads what a task holds
    flips = sum(c.flips.count for c in first.flips.values()) if first.flips else None
    masked = sum(layer.weight.numel() for layer in served._layers.values())
    return {"rss_base_mib": base, "rss_hot_mib": hot, "anon_base_mib": anon, "anon_hot_mib": anon_mib(),
            "memory": served.memory(),
            "flip_fraction": None if flips is None else flips / masked,
            "bundle_bytes": statistics.mean(p.stat().st_size for p in paths),
            "load_ms_median": 1000 * statistics.median(served.load_seconds[1:]) if count > 1 else None}


def _lora_hot(model: str | None, count: int) -> dict[str, Any]:
    import torch

    from bench.serving import lora_model
    from maskctl.models import load_tokenizer
    from maskctl.serving.memory import release_freed_memory

    net, source = lora_model(model, 1)
    tokenizer = load_tokenizer(source)
    enc = tokenizer([TEXT] * 16, return_tensors="pt", padding=True)
    with torch.inference_mode():
        net(**enc, adapter_names=["a0"] * 16)
    release_freed_memory()
    base, anon = rss_mib(), anon_mib()
    for i in range(1, count):
        net.add_adapter(f"a{i}", net.peft_config["a0"])
    with torch.inference_mode():
        for i in range(0, count, 16):
            names = [f"a{j}" for j in range(i, min(i + 16, count))]
            net(**tokenizer([TEXT] * len(names), return_tensors="pt", padding=True), adapter_names=names)
    release_freed_memory()
    adapter = sum(p.numel() * p.element_size() for n, p in net.named_parameters() if ".a0." in n or n.endswith(".a0"))
    return {"rss_base_mib": base, "rss_hot_mib": rss_mib(), "anon_base_mib": anon, "anon_hot_mib": anon_mib(),
            "adapter_param_bytes": adapter}


def hot_memory(model: str | None, paths: list[Path], counts=HOT_COUNTS, kernels=("compiled",),
               csr_up_to: int = 200) -> dict[str, Any]:
    """Every (contender, count) in its own process; ``{count: {contender: answer}}``. The CSR
    path (``kernels`` "torch") only up to ``csr_up_to`` tasks: ~2 MB each on MiniLM."""
    out: dict[str, Any] = {}
    for count in [c for c in counts if c <= len(paths)]:
        row = {}
        for kernel in [k for k in kernels if k != "torch" or count <= csr_up_to]:
            try:
                row[f"maskctl-{kernel}"] = run_child("hot-memory", {"method": "mask", "kernel": kernel, "count": count,
                                                                    "model": model, "paths": [str(p) for p in paths]},
                                                     timeout=3600)
            except RuntimeError as exc:
                row[f"maskctl-{kernel}_error"] = str(exc)[-300:]
        try:
            row["lora"] = run_child("hot-memory", {"method": "lora", "count": count, "model": model}, timeout=3600)
        except RuntimeError as exc:  # without peft the reason is the result
            row["lora_error"] = str(exc)[-300:]
        out[str(count)] = row
        log(f"serving: hot memory, {count} tasks: " + json.dumps(
            {k: round(v["rss_hot_mib"] - v["rss_base_mib"], 1) for k, v in row.items() if isinstance(v, dict)}))
    return out


def bert_base_folder(work: Path) -> Path:
    """A random BERT-base (the shipped config) saved with the packaged MiniLM's tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from maskctl.models import load_tokenizer, resolve_model, save_model_folder

    folder = work / "bert-base-random"
    if not (folder / "config.json").exists():
        config = AutoConfig.from_pretrained(Path(__file__).resolve().parents[1] / "maskctl" / "sizing_configs"
                                            / "bert-base-uncased.json")
        torch.manual_seed(0)
        save_model_folder(AutoModelForSequenceClassification.from_config(config), load_tokenizer(resolve_model(None)),
                          folder)
    return folder


def bert_base_bundle(work: Path, folder: Path) -> Path:
    """A bbc-news bundle of the random BERT-base: one step on 16 articles (8 more as dev)."""
    from maskctl.tasks.task import get_task
    from maskctl.training.trainer import TrainArgs, train

    real = work / "bert-base-real.bundle"
    if not real.exists():
        rows = [{"text": ex["text"], "label": ex["label"]} for ex in get_task("bbc-news").examples("train")[:24]]
        for name, part in (("train", rows[:16]), ("dev", rows[16:])):
            (work / f"bert-base-{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
        log("serving: one training step of a random BERT-base on 16 bbc-news articles ...")
        train(TrainArgs(model=str(folder), train_file=str(work / "bert-base-train.jsonl"),
                        validation_file=str(work / "bert-base-dev.jsonl"), task_name="news-base",
                        output=str(real), max_steps=1, batch_size=16, overwrite=True, device="cpu"))
    return real


def hot_memory_lines(rows: dict[str, Any], title: str) -> list[str]:
    """The hot-memory table: RSS above one task, maskctl against LoRA, per added task."""
    lines = [title, "", "| hot tasks | maskctl above 1 task (MiB) | LoRA above 1 adapter (MiB) | maskctl / LoRA "
             "| per added task maskctl / LoRA (MB) | maskctl held flips per task (kB) |", "|---|---|---|---|---|---|"]
    for count, row in rows.items():
        mask = row.get("maskctl-compiled") or row.get("maskctl-torch")
        lora = row.get("lora")
        if mask is None:
            lines.append(f"| {count} | failed: {str(row)[:120]} | | | | |")
            continue
        grow = (mask["rss_hot_mib"] - mask["rss_base_mib"]) if mask else None
        lora_grow = (lora["rss_hot_mib"] - lora["rss_base_mib"]) if lora else None
        n = int(count) - 1
        if n == 0:
            one = f"RSS {mask['rss_base_mib']:.0f} (own {mask['anon_base_mib']:.0f})"
            lines.append(f"| 1 | {one} | RSS {lora['rss_base_mib']:.0f} (own {lora['anon_base_mib']:.0f}) | | | |"
                         if lora else f"| 1 | {one} | {row.get('lora_error', '')[:80]} | | | |")
            continue
        held = mask["memory"]["flips_bytes"] / mask["memory"]["tasks"] / 1e3
        per = f"{grow * 2**20 / n / 1e6:.3f}" + (f" / {lora_grow * 2**20 / n / 1e6:.3f}" if lora else "")
        ratio = f"**{grow / lora_grow:.2f}×**" if lora and lora_grow > 0 else ""
        lines.append(f"| {count} | {grow:.1f} | {lora_grow:.1f} | {ratio} | {per} | {held:.0f} |" if lora else
                     f"| {count} | {grow:.1f} | {row.get('lora_error', '')[:80]} | | {per} | {held:.0f} |")
    return lines
