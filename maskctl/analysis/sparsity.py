"""Paper Fig. 1: the dev score of a masked model against the initial sparsity of its masks.

Zhao et al. (§5.1) train masks at initial sparsities {1, 3, 5, 10, 15, 20, ..., 95}% with every
other hyper-parameter fixed, four seeds each, and find that 3-10% works well across tasks while
1% (keeping nearly every pretrained weight hinders adaptation) and very high sparsity (most
pretrained knowledge thrown away) hurt. This reruns that for any recipe: one run per sparsity
and seed (see ``maskctl.analysis.runs`` for resumption), a table per run and one of mean ± sd
per sparsity, and a figure of the mean with a ±1 sd band on a log x axis, so that 1, 3 and 5%
stay apart as well as 90 and 95%. The paper masks every block for this figure (``mask_blocks:
all``) with lr 5e-5; the recipe decides here.
"""

from __future__ import annotations

from pathlib import Path

from maskctl.analysis.runs import (
    AnalysisResult,
    Plan,
    describe,
    mean_sd,
    meta,
    metric_name,
    parse_numbers,
    run_all,
    run_columns,
)
from maskctl.errors import MaskctlError
from maskctl.experiments.report import new_figure, save_figure, write_table
from maskctl.experiments.sweep import SweepCallback
from maskctl.experiments.sweep_points import point_label

VARIED = ("init_sparsity", "seed")
NAME = "sparsity"


def parse_percents(text: str) -> list[float]:
    """``"1,5,50"`` -> percentages strictly between 0 and 100 (whole ones as ints)."""
    values = parse_numbers(text, "--values")
    bad = [v for v in values if not 0 < v < 100]
    if bad:
        raise MaskctlError(
            f"--values {bad[0]:g} is not an initial sparsity in percent",
            "give percentages strictly between 0 and 100, e.g. 1,5,50",
        )
    return [int(v) if float(v).is_integer() else v for v in values]


def _run(percent: float, seed: int) -> dict[str, float | int]:
    return {"init_sparsity": round(percent / 100, 8), "seed": seed}


def run_sparsity(
    the_plan: Plan, percents: list[float], seeds: list[int], out_dir: str | Path, callback: SweepCallback | None = None
) -> AnalysisResult:
    """Train one mask per initial sparsity and seed; write the tables and the figure to ``out_dir``."""
    out_dir = Path(out_dir)
    runs = [_run(p, s) for p in percents for s in seeds]
    results = run_all(the_plan, runs, out_dir, callback)
    rows = [
        {"init_sparsity_pct": p, "seed": s, **run_columns(results[point_label(_run(p, s))], the_plan.grid)}
        for p in percents
        for s in seeds
    ]
    summary = []
    for p in percents:
        mine = [row for row in rows if row["init_sparsity_pct"] == p]
        mean, sd = mean_sd([row["dev_score"] for row in mine])
        final = mean_sd([row["final_sparsity_pct"] for row in mine])[0]
        summary.append(
            {
                "init_sparsity_pct": p,
                "seeds": len(mine),
                "dev_mean": mean,
                "dev_sd": sd,
                "final_sparsity_pct_mean": final,
            }
        )
    metric = metric_name(the_plan.settings)
    info = meta(the_plan, out_dir, metric, values_pct=list(percents), seeds=list(seeds))
    title = f"Dev {metric} vs initial mask sparsity ({describe(the_plan.settings)})"
    tables = {
        "runs": write_table(rows, out_dir, f"{NAME}-runs", meta=info, title=f"{title}: every run"),
        "summary": write_table(summary, out_dir, NAME, meta=info, title=f"{title}: mean and sd over seeds"),
    }
    figure = _figure(rows, summary, metric, the_plan, out_dir / f"{NAME}.png")
    return AnalysisResult(rows=rows, summary=summary, tables=tables, figure=figure, out_dir=out_dir)


def _figure(rows: list[dict], summary: list[dict], metric: str, the_plan: Plan, path: Path) -> Path:
    # A logit axis spreads both ends (1-10 % and 80-95 %) evenly, where a log axis crowds the top.
    points = sorted(summary, key=lambda row: row["init_sparsity_pct"])
    xs = [row["init_sparsity_pct"] / 100 for row in points]
    means = [row["dev_mean"] for row in points]
    sds = [row["dev_sd"] for row in points]
    seeds = max(row["seeds"] for row in points)
    fig = new_figure()
    ax = fig.add_subplot()
    ax.scatter(
        [row["init_sparsity_pct"] / 100 for row in rows],
        [row["dev_score"] for row in rows],
        s=12,
        color="0.6",
        zorder=2,
        label="one run",
    )
    ax.plot(xs, means, marker="o", color="C0", zorder=3, label=f"mean over {seeds} seed{'s' * (seeds > 1)}")
    if any(sd > 0 for sd in sds):
        ax.fill_between(
            xs,
            [m - s for m, s in zip(means, sds)],
            [m + s for m, s in zip(means, sds)],
            color="C0",
            alpha=0.2,
            label="±1 sd",
        )
    ax.set_xscale("logit")
    ax.set_xticks(xs, labels=[f"{100 * x:g}" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("initial sparsity of the masks (%)")
    ax.set_ylabel(f"dev {metric}")
    ax.set_title(f"{describe(the_plan.settings)}: initial sparsity (paper Fig. 1)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
