"""``results-quality.md`` / ``.json`` and ``quality-pareto-<task>.png`` from the runs of
``bench/run.py --quality`` (one JSON per run under ``<out>/quality/<task>/<method>/``).

Per task and method the reported setting is the best on dev among those run with the most seeds
(the search runs every seed only for its chosen settings). Paired differences compare two
methods seed by seed (same seed: same data order and classifier init), with a t interval.
The Pareto figure puts every setting's mean test score against its bytes per task (bundle,
adapter or model folder), each run as a dot: a method's front is the settings, among those run
with 3+ seeds, that no other such setting of it beats on both (one seed's score is too noisy).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

METHODS = ("mask", "finetune", "lora")
PAIRS = (("mask", "finetune"), ("mask", "lora"), ("lora", "finetune"))
COLOURS = {"mask": "tab:blue", "finetune": "tab:red", "lora": "tab:green"}


def label_of(lr: float, variant: str | None) -> str:
    return f"lr{lr:g}" + (f"-{variant}" if variant else "")


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd over the seeds of one setting, with what each seed scored and cost."""
    flips = [r["flip_fraction"] for r in runs if r.get("flip_fraction") is not None]
    return {
        "lr": runs[0]["settings"]["lr"],
        "variant": runs[0]["variant"],
        "seeds": [r["settings"]["seed"] for r in runs],
        "dev": _stats([r["dev"]["score"] for r in runs]),
        "test": _stats([r["test"]["score"] for r in runs]),
        "test_scores": [r["test"]["score"] for r in runs],
        "kept_epochs": [r["kept"]["epoch"] for r in runs],
        "bytes": statistics.fmean(r["bytes"] for r in runs),
        "bytes_per_seed": [r["bytes"] for r in runs],
        "flip_fraction": statistics.fmean(flips) if flips else None,
        "wall_s": statistics.fmean(r["wall_s"] for r in runs),
    }


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]], split: str = "test") -> dict[str, Any] | None:
    """``split`` score of ``a`` minus ``b`` on the seeds both ran: mean, sd, 95 % t interval."""
    from scipy import stats

    by_seed = {r["settings"]["seed"]: r[split]["score"] for r in b}
    diffs = [r[split]["score"] - by_seed[r["settings"]["seed"]] for r in a if r["settings"]["seed"] in by_seed]
    if len(diffs) < 2:
        return None
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * sd / len(diffs) ** 0.5
    return {"seeds": len(diffs), "diffs": diffs, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def _runs(root: Path, method: str) -> dict[tuple, list[dict[str, Any]]]:
    by_setting: dict[tuple, list] = {}
    for path in sorted((root / method).glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        by_setting.setdefault((r["settings"]["lr"], r["variant"]), []).append(r)
    return {k: sorted(v, key=lambda r: r["settings"]["seed"]) for k, v in by_setting.items()}


def _chosen(settings: dict[tuple, list]) -> list[dict[str, Any]] | None:
    """The best on dev among the settings with the most seeds."""
    if not settings:
        return None
    most = max(len(rs) for rs in settings.values())
    return max(
        (rs for rs in settings.values() if len(rs) == most),
        key=lambda rs: statistics.fmean(r["dev"]["score"] for r in rs),
    )


def write_table(out: Path) -> Path:
    """``results-quality.md`` (and .json, one Pareto PNG per task and, with budget runs, one front
    PNG per task) from every finished run."""
    from bench.quality_front import (
        FRONT_HEADER,
        MIN_SEEDS,
        TODAY,
        WITHIN,
        fewest_flips,
        front_figure,
        front_rows,
        front_settings,
    )  # (quality_front builds on this module's summaries)

    rows, pair_rows, data, seed0, every, fronts = [], [], {}, [], [], []
    for task in sorted(p.name for p in (out / "quality").iterdir() if p.is_dir()) if (out / "quality").is_dir() else []:
        root = out / "quality" / task
        settings = {m: _runs(root, m) for m in METHODS}
        chosen = {m: _chosen(s) for m, s in settings.items()}
        data[task] = {
            m: {
                "best": summarise(rs) if rs else None,
                "settings": {label_of(*k): summarise(v) for k, v in settings[m].items()},
            }
            for m, rs in chosen.items()
        }
        for m, rs in chosen.items():
            if not rs:
                continue
            s = data[task][m]["best"]
            flips = f"{s['flip_fraction']:.2%}" if s["flip_fraction"] is not None else ""
            rows.append(
                f"| {task} | {m} | {label_of(s['lr'], s['variant'])} | {s['dev']['mean']:.4f} ± {s['dev']['sd']:.4f} "
                f"| **{s['test']['mean']:.4f} ± {s['test']['sd']:.4f}** | {', '.join(f'{x:.3f}' for x in s['test_scores'])} "
                f"| {', '.join(str(e) for e in s['kept_epochs'])} | {s['bytes']:,.0f} | {flips} | {s['wall_s']:.0f} |"
            )
        for a, b in PAIRS:
            if chosen[a] and chosen[b] and (p := paired(chosen[a], chosen[b])):
                dev = paired(chosen[a], chosen[b], "dev")  # the split both chose their setting and epoch on
                data[task][f"{a}-{b}"] = {**p, "dev": dev}
                pair_rows.append(
                    f"| {task} | {a} − {b} | {p['seeds']} | **{p['mean']:+.4f}** | {p['sd']:.4f} | "
                    f"[{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}] | {', '.join(f'{d:+.3f}' for d in p['diffs'])} "
                    f"| {dev['mean']:+.4f} [{dev['ci95'][0]:+.4f}, {dev['ci95'][1]:+.4f}] |"
                )
        every += setting_rows(task, data[task]["mask"]["settings"], data[task]["lora"]["best"])
        budgets = front_settings(task, settings["mask"])
        if len(budgets) > 1:
            chosen_budget = fewest_flips(task, budgets)
            data[task]["front"] = {"today": TODAY.get(task), "fewest_flips_within": chosen_budget}
            fronts += front_rows(task, budgets, data[task]["lora"]["best"], chosen_budget)
            front_figure(task, budgets, chosen_budget, out / f"quality-front-{task}.png")
        for m in METHODS:
            runs = [rs[0] for rs in settings[m].values() if rs[0]["settings"]["seed"] == 0]
            if runs:
                seed0.append(
                    f"- {task} {m}: "
                    + ", ".join(
                        f"{label_of(r['settings']['lr'], r['variant'])} {r['dev']['score']:.4f} / {r['test']['score']:.4f} "
                        f"(ep {r['kept']['epoch']})"
                        for r in sorted(runs, key=lambda r: (str(r["variant"]), r["settings"]["lr"]))
                    )
                )
        if any(settings.values()):
            pareto_figure(task, settings, out / f"quality-pareto-{task}.png")
    lines = [
        (
            "| task | method | setting (best on dev) | dev | test | test per seed | kept epoch | bytes per task "
            "| flipped bits | s per run |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Paired test differences (same seeds), mean, sd and 95 % t interval; the same on dev:",
        "",
        "| task | difference | seeds | mean | sd | 95 % interval | per seed | dev: mean [95 %] |",
        "|---|---|---|---|---|---|---|---|",
        *pair_rows,
        "",
        "Every masking setting run, mean over its seeds (the front is in the figure):",
        "",
        "| task | setting | seeds | dev | test | flipped bits | bytes per task | × LoRA's bytes |",
        "|---|---|---|---|---|---|---|---|",
        *every,
        "",
        (
            f"The flip budget's front (`--max-flips`; in bold: the fewest mean flips whose dev score is within "
            f"{WITHIN * 100:g} point of today's default, paired over shared seeds, {MIN_SEEDS}+ seeds):"
        ),
        "",
        *FRONT_HEADER,
        *fronts,
        "",
        "Seed 0, every setting tried (dev score / test score, kept epoch):",
        "",
        *seed0,
    ]
    (out / "results-quality.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    path = out / "results-quality.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def setting_rows(task: str, summaries: dict[str, dict[str, Any]], lora: dict[str, Any] | None) -> list[str]:
    """One row per masking setting (``summarise`` of its seeds, by label): mean dev and test
    scores, flipped bits and bytes, the bytes also as a multiple of the chosen LoRA setting's
    adapter (``lora``, its summary), smallest bundle first."""
    rows = []
    for label, s in sorted(summaries.items(), key=lambda kv: kv[1]["bytes"]):
        flips = f"{s['flip_fraction']:.1%}" if s["flip_fraction"] is not None else ""
        ratio = f"{s['bytes'] / lora['bytes']:.2f}" if lora else ""
        rows.append(
            f"| {task} | {label} | {len(s['seeds'])} | {s['dev']['mean']:.4f} | {s['test']['mean']:.4f} | "
            f"{flips} | {s['bytes']:,.0f} | {ratio} |"
        )
    return rows


def front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The (bytes, score, label) points no other point beats on both, by bytes."""
    return sorted(p for p in points if not any(q[0] <= p[0] and q[1] >= p[1] and q[:2] != p[:2] for q in points))


def pareto_figure(task: str, settings: dict[str, dict[tuple, list]], path: Path) -> Path:
    from maskctl.experiments.report import new_figure, save_figure

    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    for method, by_setting in settings.items():
        if not by_setting:
            continue
        colour = COLOURS[method]
        runs = [r for rs in by_setting.values() for r in rs]
        ax.scatter([r["bytes"] for r in runs], [r["test"]["score"] for r in runs], s=10, alpha=0.35, color=colour)
        means = {
            key: (
                statistics.fmean(r["bytes"] for r in rs),
                statistics.fmean(r["test"]["score"] for r in rs),
                f"{label_of(*key)} ({len(rs)})",
            )
            for key, rs in by_setting.items()
        }
        seeded = [means[k] for k, rs in by_setting.items() if len(rs) >= 3]
        single = [means[k] for k, rs in by_setting.items() if len(rs) < 3]
        ax.scatter([m[0] for m in seeded], [m[1] for m in seeded], s=40, color=colour, label=f"{method} (3+ seeds)")
        ax.scatter(
            [m[0] for m in single],
            [m[1] for m in single],
            s=40,
            facecolors="none",
            edgecolors=colour,
            label=f"{method} (1-2 seeds)",
        )
        edge = front(seeded)  # one seed's test score is too noisy to set a front (sd ~0.02-0.03)
        ax.plot([p[0] for p in edge], [p[1] for p in edge], color=colour, lw=1)
        for x, y, label in edge + [m for m in single if m[1] > max(p[1] for p in edge) - 0.03]:
            ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    lora = [statistics.fmean(r["bytes"] for r in rs) for rs in settings.get("lora", {}).values()]
    if lora:
        ax.axvline(0.5 * min(lora), color=COLOURS["lora"], ls="--", lw=0.8)
        ax.annotate(
            "0.5 × LoRA's bytes",
            (0.5 * min(lora), ax.get_ylim()[1]),
            fontsize=6,
            rotation=90,
            va="top",
            ha="right",
            color=COLOURS["lora"],
        )
    scores = [r["test"]["score"] for rs in settings.values() for v in rs.values() for r in v]
    ax.set_ylim(bottom=min(x for x in scores if x > 0.8 * max(scores)) - 0.02)  # diverged runs fall below
    ax.set_xscale("log")
    ax.set_xlabel("bytes per task (bundle, adapter or model folder)")
    ax.set_ylabel("test score")
    ax.set_title(
        f"{task}: test score against bytes per task (dots: runs; markers: a setting's mean over "
        "its seeds, count in brackets; lines: each method's front over settings with 3+ seeds)",
        fontsize=8,
        wrap=True,
    )
    ax.legend(loc="lower right", fontsize=7)
    return save_figure(fig, path)
