"""Figure 7: does masking learn the task as well as finetuning? Both trained by maskctl's own
trainer (``maskctl.training.trainer.train``) per task and seed, with the same epochs and data.

Its mask bundles feed figures 5 (ensemble members), 6 (bits) and 8 (LoRA's reference).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.common import dir_bytes, load_task, log, mean_sd, slug


def bench_quality(
    settings: dict[str, dict], seeds: tuple[int, ...], work: Path, model: str | None = None
) -> dict[str, Any]:
    """Mask and finetune each task with maskctl's trainer, same epochs, per seed."""
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    out: dict[str, Any] = {}
    for task, cfg in settings.items():
        runs: dict[str, list[dict]] = {"mask": [], "finetune": []}
        for seed in seeds:
            for method in ("mask", "finetune"):
                target = work / (f"{slug(task)}-{method}-s{seed}" + (".bundle" if method == "mask" else ""))
                args = TrainArgs(
                    model=model,
                    task=task,
                    method=method,
                    seed=seed,
                    epochs=cfg.get("epochs"),
                    max_train_samples=cfg.get("max_train_samples"),
                    max_length=cfg.get("max_length", 128),
                    output=str(target),
                    overwrite=True,
                    device="cpu",
                )
                log(f"quality: {task} {method} seed {seed} ...")
                result = train(args)
                size, files = dir_bytes(result.output)
                runs[method].append(
                    {
                        "seed": seed,
                        "score": result.metrics["score"],
                        "metrics": result.metrics,
                        "wall_s": result.wall_seconds,
                        "bytes": size,
                        "files": files,
                        "output": str(result.output),
                        "epochs": args.with_task_defaults(load_task(task).card.defaults).epochs,
                    }
                )
                log(
                    f"quality: {task} {method} seed {seed}: {result.metrics['score']:.4f} "
                    f"in {result.wall_seconds:.0f} s"
                )
        summary = {}
        for method, rows in runs.items():
            mu, sd = mean_sd([r["score"] for r in rows])
            acc_mu, acc_sd = mean_sd([r["metrics"]["accuracy"] for r in rows])
            summary[method] = {
                "mean": mu,
                "sd": sd,
                "accuracy_mean": acc_mu,
                "accuracy_sd": acc_sd,
                "wall_s_mean": statistics.fmean(r["wall_s"] for r in rows),
                "bytes": rows[0]["bytes"],
                "files": rows[0]["files"],
            }
        out[task] = {
            "settings": {
                "max_length": 128,
                **cfg,
                "epochs": runs["mask"][0]["epochs"],
                "seeds": list(seeds),
                "metric": load_task(task).card.metric,
            },
            "runs": runs,
            "summary": summary,
        }
    return out
