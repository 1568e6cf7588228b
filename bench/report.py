"""The goals and the Markdown table: one row per figure, from the results JSON alone.

Separate from the measuring code so that a table can be rebuilt from a saved
``results-<mode>.json`` (``markdown(json.load(...))``) without running anything.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

GOALS = {
    "step_time_ratio": ("<=", 1.05),
    "train_peak_rss_ratio": ("<=", 1.00),
    "inference_throughput_ratio": (">=", 0.98),
    "apply_ms_minilm": ("<=", 100.0),
    "ensemble_peak_rss_ratio": ("<=", 1.25),
}


def goal_row(key: str, value: float | None) -> tuple[str, str]:
    op, target = GOALS[key]
    if value is None or not math.isfinite(value):
        return f"{op} {target:g}", "n/a"
    met = value <= target if op == "<=" else value >= target
    return f"{op} {target:g}", "yes" if met else "**no**"


def _apply_text(m: dict[str, Any]) -> str:
    text = (
        f"**{m['total_ms']:.0f} ms** with {m['threads']} threads (load+decode {m['load_bundle_ms']:.0f}, "
        f"of which raw read {m['read_raw_ms']:.0f}; merge {m['apply_ms']:.0f})"
    )
    for n, t in m.get("by_threads", {}).items():
        if int(n) != m["threads"]:
            text += (
                f"; {n} thread: {t['total_ms']:.0f} ms (load+decode {t['load_bundle_ms']:.0f}, "
                f"merge {t['apply_ms']:.0f})"
            )
    return text


def _floor_text(f: dict | None) -> str:
    if not f:
        return ""
    return (
        f"; floor (finetune only the masked matrices) / LoRA {f['floor_over_lora']:.2f}, "
        f"mask / floor {f['mask_over_floor']:.2f}"
    )


def _fmt_mib(x: float) -> str:
    return f"{x:,.0f} MiB"


def markdown(results: dict[str, Any]) -> str:
    r = results
    lines = [
        f"## maskctl benchmarks ({r['mode']} mode)",
        "",
        (
            f"Machine: {r['machine'].get('nproc')} CPU cores ({r['machine'].get('cpu', '?')}), "
            f"{r['machine'].get('ram_gib', '?')} GiB RAM, torch {r['machine']['torch']} "
            f"({r['machine']['torch_threads']} threads), transformers {r['machine'].get('transformers')}, "
            f"peft {r['machine'].get('peft')}. Load average at start / end: {r['load_start']} / {r.get('load_end')}. "
            f"Wall time {r.get('wall_s', 0):.0f} s."
        ),
        "",
        "| # | figure | measured | goal | met |",
        "|---|---|---|---|---|",
    ]

    def row(num: str, what: str, measured: str, key: str | None = None, value: float | None = None) -> None:
        goal, met = goal_row(key, value) if key else ("—", "—")
        lines.append(f"| {num} | {what} | {measured} | {goal} | {met} |")

    def err(num: str, what: str, section: str) -> bool:
        s = r["sections"].get(section)
        if s is None:
            row(num, what, "not run")
            return True
        if "skipped" in s:
            row(num, what, f"skipped ({s['skipped']})")
            return True
        if "error" in s:
            row(num, what, f"failed: {s['error'][:160]}")
            return True
        return False

    if not err("1", "masked / finetune training step time", "step_time"):
        s = r["sections"]["step_time"]
        row(
            "1",
            f"masked / finetune training step time (MiniLM, batch {s['batch'][0]} x {s['batch'][1]}, "
            f"median of {s['steps']})",
            f"**{s['ratio']:.3f}** ({s['mask']['median_total_s']:.2f} s / {s['finetune']['median_total_s']:.2f} s; "
            f"paired {s['ratio_paired']:.3f}, CPU time {s['ratio_cpu']:.3f})",
            "step_time_ratio",
            s["ratio"],
        )
    if not err("2", "masked / finetune training peak RSS", "train_memory"):
        s = r["sections"]["train_memory"]
        row(
            "2",
            "masked / finetune training peak RSS (fresh process each)",
            f"**{s['ratio']:.3f}** ({_fmt_mib(s['mask']['peak_rss_mib'])} / {_fmt_mib(s['finetune']['peak_rss_mib'])}; "
            f"above imports {s['ratio_above_imports']:.3f})",
            "train_peak_rss_ratio",
            s["ratio"],
        )
    if not err("3", "merged-mask / base inference throughput", "inference"):
        s = r["sections"]["inference"]
        row(
            "3",
            f"merged-mask / base inference throughput (batch {s['batch'][0]} x {s['batch'][1]})",
            f"**{s['ratio']:.3f}** ({s['merged_examples_per_s']:.1f} / {s['base_examples_per_s']:.1f} ex/s; "
            f"paired {s['ratio_paired']:.3f})",
            "inference_throughput_ratio",
            s["ratio"],
        )
    if not err("4", "apply one bundle to a resident model", "apply"):
        s = r["sections"]["apply"]
        m = s["minilm"]
        row(
            "4a",
            f"apply one bundle, MiniLM ({m['bundle']} bundle; load_bundle + ResidentModel.apply)",
            _apply_text(m),
            "apply_ms_minilm",
            m["total_ms"],
        )
        if "bert_base" in s:
            b = s["bert_base"]
            row(
                "4b",
                "apply one bundle, BERT-base shape (random weights, simulated bundle)",
                _apply_text(b) + f"; save_bundle took {s.get('bert_base_save_s', float('nan')):.1f} s",
            )
    if not err("5", "4-bundle ensemble / 1-bundle eval peak RSS", "ensemble_memory"):
        s = r["sections"]["ensemble_memory"]
        row(
            "5",
            f"{s['members']}-bundle ensemble / 1-bundle eval peak RSS ({s.get('task', '?')}, {s['split']})",
            f"**{s['ratio']:.3f}** ({_fmt_mib(s['ensemble']['peak_rss_mib'])} / {_fmt_mib(s['eval']['peak_rss_mib'])}; "
            f"above imports {s['ratio_above_imports']:.3f})",
            "ensemble_peak_rss_ratio",
            s["ratio"],
        )
    if not err("6", "bundle bits per masked weight", "bits"):
        for name, b in r["sections"]["bits"].items():
            flip = (
                ""
                if b["flip_entropy_bits"] is None
                else f"; flips vs initial mask {100 * b['flip_rate']:.2f} %, H = {b['flip_entropy_bits']:.3f}"
            )
            row(
                "6",
                f"bits per masked weight, {name} ({b['masked_weights']:,} weights, format {b['format_version']})",
                f"**{b['bits_per_weight_file']:.3f}** whole file, {b['bits_per_weight_payload']:.3f} mask payload "
                f"(file {b['file_bytes']:,} B); H(p={b['zero_fraction']:.4f}) = {b['entropy_bits']:.3f}{flip}",
            )
    q = r["sections"].get("quality")
    if q is None or "error" in q or "skipped" in q:
        err("7", "masking vs finetuning quality", "quality")
    else:
        for task, s in q.items():
            st = s["settings"]
            what = (
                f"quality {task} ({st['metric']}, {st['epochs']} epoch(s), "
                f"{'all' if st.get('max_train_samples') is None else st['max_train_samples']} train examples, "
                f"{st['max_length']} tokens, seeds {','.join(map(str, st['seeds']))})"
            )
            m, f = s["summary"]["mask"], s["summary"]["finetune"]
            extra = ""
            if st["metric"] != "accuracy":
                extra = f" (word accuracy {m['accuracy_mean']:.3f} vs {f['accuracy_mean']:.3f})"
            row(
                "7",
                what,
                f"mask **{m['mean']:.3f} ± {m['sd']:.3f}** vs finetune **{f['mean']:.3f} ± {f['sd']:.3f}**"
                f"{extra}; run {m['wall_s_mean']:.0f} s vs {f['wall_s_mean']:.0f} s; per task on disk "
                f"{m['bytes']:,} B vs {f['bytes']:,} B ({f['files']} files)",
            )
    if not err("8", "PEFT LoRA beside masking", "lora"):
        s = r["sections"]["lora"]
        lo, ma = s["lora"], s["mask"]
        disk = f"on disk LoRA {lo['bytes']:,} B in {lo['files']} files vs mask {ma['bytes']:,} B in {ma['files']}"
        if s.get("finetune"):
            disk += f" vs finetune {s['finetune']['bytes']:,} B in {s['finetune']['files']}"
        row(
            "8",
            f"LoRA r={lo['r']} q,v + classifier (AdamW lr {lo['lr']:g}) vs mask ({s['task']}, {s['epochs']} "
            f"epoch(s), {s['steps_per_epoch']} steps/epoch, {s.get('max_length', 128)} tokens, seed {s['seed']})",
            f"{'accuracy' if 'bbc' in s['task'] else 'score'} LoRA **{lo['score']:.3f}** vs mask **{ma['score']:.3f}**; "
            f"LoRA epoch {lo['epoch_s']:.0f} s, mask / LoRA step time {s['step_time_ratio_mask_over_lora']:.2f} "
            f"(paired, {s['paired_steps']} steps){_floor_text(s.get('floor'))}; {disk}",
        )
    lines += ["", "Section wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["section_wall_s"].items()) + "."]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out: Path, mode: str, started: float) -> None:
    """Write ``results-<mode>.json`` and ``.md`` to ``out``: after every section, so that a run
    stopped half-way keeps what it measured."""
    out.mkdir(parents=True, exist_ok=True)
    results.setdefault("wall_s", time.perf_counter() - started)
    snapshot = {**results, "wall_s": results["wall_s"] if "load_end" in results else time.perf_counter() - started}
    (out / f"results-{mode}.json").write_text(json.dumps(snapshot, indent=2, default=str), encoding="utf-8")
    (out / f"results-{mode}.md").write_text(markdown(snapshot), encoding="utf-8")
