"""Paper Fig. 2: mask only the bottom K or only the top K transformer blocks, K = 1..L.

Zhao et al. (§5.2) find that masking the top K blocks ("top-down") beats masking the bottom K
("bottom-up") at the same K: lower layers carry general features worth keeping as they are,
while higher ones need the freedom to adapt; bottom-up improves as K grows. This reruns that
for any recipe: ``--mask-blocks bottom:K`` and ``top:K`` for each K (both are every block at
K = L, trained once), per seed, a table per run and one of mean ± sd per direction and K, and
a figure with one curve per direction. The pooler and classifier stay masked or trained as the
recipe's ``head`` says (the paper masks them), whatever K is.
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

VARIED = ("mask_blocks", "seed")
DIRECTIONS = ("bottom", "top")
CURVES = {"bottom": "bottom-up", "top": "top-down"}
NAME = "layers"


def count_blocks(model: str | None) -> int:
    """The number of transformer blocks of ``model``, read from its config (no weights loaded)."""
    from maskctl.models import load_config, resolve_model

    config = load_config(resolve_model(model))
    for attr in ("num_hidden_layers", "n_layers", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    raise MaskctlError(f"cannot tell how many blocks model {model!r} has", "use a BERT-like encoder")


def parse_ks(text: str | None, n_blocks: int) -> list[int]:
    """``--k 1,2,4`` (default 1..L) -> block counts between 1 and L."""
    if not text:
        return list(range(1, n_blocks + 1))
    ks = parse_numbers(text, "--k", int)
    bad = [k for k in ks if not 1 <= k <= n_blocks]
    if bad:
        raise MaskctlError(f"--k {bad[0]}: this model has {n_blocks} blocks", f"give numbers from 1 to {n_blocks}")
    return sorted(ks)


def block_spec(direction: str, k: int, n_blocks: int) -> str:
    """The ``--mask-blocks`` value: ``bottom:K``/``top:K``, and ``all`` when K is every block."""
    return "all" if k == n_blocks else f"{direction}:{k}"


def block_range(direction: str, k: int, n_blocks: int) -> str:
    """The masked block indices (0-based, as in the paper): ``0-2`` or ``3-5``."""
    lo, hi = (0, k - 1) if direction == "bottom" else (n_blocks - k, n_blocks - 1)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def run_layers(
    the_plan: Plan,
    ks: list[int] | None,
    seeds: list[int],
    out_dir: str | Path,
    callback: SweepCallback | None = None,
    n_blocks: int | None = None,
) -> AnalysisResult:
    """Train one mask per direction, K and seed; write the tables and the figure to ``out_dir``."""
    out_dir = Path(out_dir)
    n_blocks = n_blocks or count_blocks(the_plan.settings.get("model"))
    ks = ks or list(range(1, n_blocks + 1))

    def changes(direction: str, k: int, seed: int) -> dict:
        return {"mask_blocks": block_spec(direction, k, n_blocks), "seed": seed}

    runs = [changes(d, k, s) for k in ks for d in DIRECTIONS for s in seeds]
    runs = list({point_label(run): run for run in runs}.values())  # K = L is one run for both directions
    results = run_all(the_plan, runs, out_dir, callback)
    rows = [
        {
            "direction": CURVES[d],
            "k": k,
            "blocks": block_range(d, k, n_blocks),
            "seed": s,
            **run_columns(results[point_label(changes(d, k, s))], the_plan.grid),
        }
        for d in DIRECTIONS
        for k in ks
        for s in seeds
    ]
    summary = []
    for direction in CURVES.values():
        for k in ks:
            mine = [row for row in rows if row["direction"] == direction and row["k"] == k]
            mean, sd = mean_sd([row["dev_score"] for row in mine])
            summary.append(
                {
                    "direction": direction,
                    "k": k,
                    "blocks": mine[0]["blocks"],
                    "seeds": len(mine),
                    "dev_mean": mean,
                    "dev_sd": sd,
                }
            )
    metric = metric_name(the_plan.settings)
    info = meta(
        the_plan,
        out_dir,
        metric,
        n_blocks=n_blocks,
        ks=ks,
        seeds=list(seeds),
        head=the_plan.settings.get("head", "mask"),
    )
    title = f"Dev {metric} when masking only the bottom or top K blocks ({describe(the_plan.settings)})"
    tables = {
        "runs": write_table(rows, out_dir, f"{NAME}-runs", meta=info, title=f"{title}: every run"),
        "summary": write_table(summary, out_dir, NAME, meta=info, title=f"{title}: mean and sd over seeds"),
    }
    figure = _figure(summary, metric, the_plan, n_blocks, out_dir / f"{NAME}.png")
    return AnalysisResult(rows=rows, summary=summary, tables=tables, figure=figure, out_dir=out_dir)


def _figure(summary: list[dict], metric: str, the_plan: Plan, n_blocks: int, path: Path) -> Path:
    fig = new_figure()
    ax = fig.add_subplot()
    seeds = max(row["seeds"] for row in summary)
    for direction, color, marker in (("bottom-up", "C0", "o"), ("top-down", "C3", "s")):
        mine = [row for row in summary if row["direction"] == direction]
        ax.errorbar(
            [row["k"] for row in mine],
            [row["dev_mean"] for row in mine],
            yerr=[row["dev_sd"] for row in mine] if seeds > 1 else None,
            marker=marker,
            color=color,
            capsize=3,
            label=direction,
        )
    ks = sorted({row["k"] for row in summary})
    ax.set_xticks(ks)
    ax.set_xlabel(f"K: masked transformer blocks (of {n_blocks})")
    ax.set_ylabel(f"dev {metric}" + (f" (mean ± sd, {seeds} seeds)" if seeds > 1 else ""))
    head = "pooler and classifier masked" if the_plan.settings.get("head", "mask") == "mask" else "classifier trained"
    ax.set_title(f"{describe(the_plan.settings)}: bottom-up vs top-down (paper Fig. 2)\n{head}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
