"""The flip budget's front per task: flipped bits and bytes against dev and test score.

Why: a task's serving cost is (flipped bits) x (cost of a flip) + a fixed part, so the masking
setting a card ships should flip as few bits as its score allows. ``--max-flips`` bounds the
flips of the written mask; this module shows what each bound costs in score, for today's
default (the setting before budgets) and every ``budget-*`` setting of ``bench/run.py
--quality``, and picks the setting that the card and recipe defaults take: the fewest mean flips
whose dev score, paired seed by seed with today's default, is within ``WITHIN`` of it, among
settings run with at least ``MIN_SEEDS`` seeds.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from bench.quality_table import label_of, paired, summarise

# The defaults before --max-flips (BENCHMARKS.md): the reference each budget is measured against.
TODAY = {"bbc-news": "lr0.001", "wnut16": "lr0.003-head-train-long-first-piece"}
WITHIN = 0.005  # half a point of the dev metric
MIN_SEEDS = 5


def is_budget(name: str | None) -> bool:
    """Whether a variant (``budget-2``) or a run's label (``lr0.003-budget-2``) is a front's
    budget; the pilot's ``budget-<percent>-<rule>`` runs are not."""
    return re.fullmatch(r"(.*-)?budget-[0-9.]+", str(name)) is not None


def setting_name(label: str) -> str:
    """A run's label without its learning rate (``lr1e-05-budget-2`` -> ``budget-2``): a task's
    front is one learning rate, so the figure names its points by variant."""
    return re.sub(r"^lr[0-9.]+(e[-+]?[0-9]+)?-?", "", label) or label


def front_settings(task: str, settings: dict[tuple, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Today's default and every ``budget-<percent>`` setting, by label, each with its runs (the
    pilot's ``budget-<percent>-<rule>`` runs are in the every-setting table, not on the front)."""
    return {
        label_of(*key): runs for key, runs in settings.items() if label_of(*key) == TODAY.get(task) or is_budget(key[1])
    }


def fewest_flips(task: str, settings: dict[str, list[dict[str, Any]]]) -> str | None:
    """The label with the fewest mean flips whose paired dev difference to today's default is
    no worse than ``-WITHIN`` (None until today's default and a candidate have enough seeds)."""
    today = settings.get(TODAY.get(task, ""))
    if not today or len(today) < MIN_SEEDS:
        return None
    fits = []
    for label, runs in settings.items():
        flips = [r.get("flip_fraction") for r in runs]
        if len(runs) < MIN_SEEDS or None in flips:
            continue
        diff = 0.0 if label == TODAY[task] else paired(runs, today, "dev")["mean"]
        if diff >= -WITHIN:
            fits.append((statistics.fmean(flips), label))
    return min(fits)[1] if fits else None


def front_rows(
    task: str, settings: dict[str, list[dict[str, Any]]], lora: dict[str, Any] | None, chosen: str | None
) -> list[str]:
    """One row per setting, fewest flips first; the chosen one in bold."""
    today = settings.get(TODAY.get(task, ""))
    rows = []
    for label, runs in sorted(settings.items(), key=lambda kv: _flips(kv[1])):
        s = summarise(runs)
        bound = runs[0]["settings"].get("max_flips")
        diff = paired(runs, today, "dev") if today and label != TODAY[task] else None
        vs = f"{diff['mean']:+.4f} [{diff['ci95'][0]:+.4f}, {diff['ci95'][1]:+.4f}] ({diff['seeds']})" if diff else ""
        flips = [r["flip_fraction"] for r in runs if r.get("flip_fraction") is not None]
        shown = f"{statistics.fmean(flips):.2%} (max {max(flips):.2%})" if flips else ""
        name = f"**{label}**" if label == chosen else label
        ratio = f"{s['bytes'] / lora['bytes']:.2f}" if lora else ""
        rows.append(
            f"| {task} | {name} | {f'{bound:.2%}' if bound is not None and bound < 1 else 'none'} | "
            f"{len(runs)} | {s['dev']['mean']:.4f} ± {s['dev']['sd']:.4f} | {vs} | "
            f"{s['test']['mean']:.4f} ± {s['test']['sd']:.4f} | {shown} | {s['bytes']:,.0f} | {ratio} |"
        )
    return rows


FRONT_HEADER = [
    (
        "| task | setting | max flips | seeds | dev | dev − today's default (paired, 95 %, seeds) | test "
        "| flipped bits (mean, max) | bytes per task | × LoRA's bytes |"
    ),
    "|---|---|---|---|---|---|---|---|---|---|",
]


def _flips(runs: list[dict[str, Any]]) -> float:
    flips = [r["flip_fraction"] for r in runs if r.get("flip_fraction") is not None]
    return statistics.fmean(flips) if flips else float("inf")


def front_figure(task: str, settings: dict[str, list[dict[str, Any]]], chosen: str | None, path: Path) -> Path:
    """Four panels: dev and test score (mean ± sd over seeds, dots per run) against flipped bits
    and against bytes; the budget settings joined by a line, today's default a star."""
    from maskctl.experiments.report import new_figure, save_figure

    fig = new_figure(10, 7)
    axes = fig.subplots(2, 2)
    for row, (xkey, xlabel) in enumerate(
        (("flip_fraction", "flipped bits (share of masked weights)"), ("bytes", "bytes per task"))
    ):
        for col, split in enumerate(("dev", "test")):
            ax = axes[row][col]
            line = []
            for label, runs in settings.items():
                runs = [r for r in runs if r.get(xkey) is not None]
                if not runs:
                    continue
                xs, ys = [r[xkey] for r in runs], [r[split]["score"] for r in runs]
                x, y = statistics.fmean(xs), statistics.fmean(ys)
                sd = statistics.stdev(ys) if len(ys) > 1 else 0.0
                today = label == TODAY.get(task)
                ax.scatter(xs, ys, s=8, alpha=0.3, color="tab:orange" if today else "tab:blue")
                ax.errorbar(
                    [x],
                    [y],
                    yerr=[sd],
                    fmt="*" if today else "o",
                    ms=10 if today else 5,
                    capsize=2,
                    color="tab:orange" if today else "tab:blue",
                    mfc="none" if len(runs) < MIN_SEEDS else None,
                )
                if label == chosen:  # a ring around it, its label a line longer
                    ax.plot([x], [y], "o", ms=11, mfc="none", color="black", lw=0.8)
                ax.annotate(  # below right: a front rises to the right, so its line stays clear
                    f"{'no bound' if today else setting_name(label)} ({len(runs)})"
                    + ("\nchosen" if label == chosen else ""),
                    (x, y),
                    fontsize=6,
                    xytext=(5, -4),
                    textcoords="offset points",
                    va="top",
                )
                if not today and len(runs) >= MIN_SEEDS:
                    line.append((x, y))
            line.sort()
            ax.plot([p[0] for p in line], [p[1] for p in line], color="tab:blue", lw=1)
            if xkey == "flip_fraction":
                ax.xaxis.set_major_formatter(lambda v, _: f"{v:.1%}")
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel(f"{split} score", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(
        f"{task}: --max-flips against score (star: no bound, the default before budgets; dots: runs; markers: mean ± sd "
        f"over seeds,\nhollow under {MIN_SEEDS} seeds; line: budgets with {MIN_SEEDS}+ seeds; ring: the defaults' choice)",
        fontsize=8,
    )
    return save_figure(fig, path)
