"""``bench/run.py --quality``: masking, finetuning and PEFT LoRA, each with tuned settings.

For each task and method: a learning-rate grid on seed 0 (the paper's edge extension: when the
best sits at an edge of the grid, points x3 / /3 beyond it are added, at most ``EXTEND``), then
for masking the settings the paper and its official code vary (gradient clipping, trained vs
masked classifier, every block masked, initial sparsity), each at the best lr; then the best
setting on dev runs seeds 1 and 2 too. Every run keeps its best dev evaluation (``--keep best``,
as ``load_best_model_at_end``) and is scored on the test split. Finetuning is maskctl's own
trainer, which follows the ``Trainer`` recipe (tests/training/test_trainer_parity.py); LoRA is
PEFT r=8 on query/value with a trained classifier, AdamW, linear decay, clipping at 1.0.

Each run writes ``<out>/quality/<task>/<method>/<label>-s<seed>.json`` as it finishes, and a
rerun skips finished runs, so the search can be stopped and continued; ``--tasks`` picks tasks
(two processes can share the work, one task each). ``bench/quality_table.py`` turns the
JSON into ``<out>/results-quality.md`` and the Pareto figures.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import dir_bytes, log
from bench.quality_plan import BASE, PLAN, SEEDS
from bench.quality_table import METHODS, label_of, summarise, write_table

EXTEND = 1


class Search:
    """One task's runs, read back from their JSON files when already done."""

    def __init__(self, task: str, out: Path, work: Path, model: str | None = None) -> None:
        self.task, self.model = task, model
        self.plan = PLAN[task]
        self.root = out / "quality" / task
        self.work = work / task

    def run(self, method: str, lr: float, seed: int, variant: str | None = None) -> dict[str, Any]:
        path = self.root / method / f"{label_of(lr, variant)}-s{seed}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        settings = {
            **self.plan["common"],
            **BASE.get(method, {}),
            "lr": lr,
            "seed": seed,
            **(self.variant_settings(method, variant) if variant else {}),
        }
        log(f"quality {self.task} {method} {label_of(lr, variant)} seed {seed} ...")
        started = time.perf_counter()
        result = (
            train_lora(self.task, self.model, settings, self.work)
            if method == "lora"
            else train_maskctl(self.task, self.model, method, settings, self.work)
        )
        record = {
            "task": self.task,
            "method": method,
            "variant": variant,
            "settings": settings,
            "wall_s": time.perf_counter() - started,
            **result,
        }
        write_record(path, record)
        log(
            f"quality {self.task} {method} {label_of(lr, variant)} seed {seed}: dev {record['dev']['score']:.4f} "
            f"test {record['test']['score']:.4f} (kept epoch {record['kept']['epoch']}) in {record['wall_s']:.0f} s"
        )
        return record

    def variant_settings(self, method: str, variant: str) -> dict[str, Any]:
        plan = self.plan[method]
        return plan.get("variants", {}).get(variant) or self.named(method)[variant][1]

    def named(self, method: str) -> dict[str, tuple[float | None, dict[str, Any]]]:
        """The method's ``more`` and ``budget`` entries: name -> (lr or None for the best, settings)."""
        return {**self.plan[method].get("more", {}), **self.plan[method].get("budget", {})}

    def queued(self, specs: list[str], seeds: tuple[int, ...], backfill: bool = False) -> None:
        """Run named settings for ``seeds``, seed by seed (a whole front exists at one seed first):
        ``finetune`` / ``lora`` / ``mask`` (each method's chosen setting, read back from its seed-0
        runs), ``mask:<variant>`` (a variant, ``more`` or ``budget`` entry, at its own lr or the
        best), ``mask:@budgets`` (every ``budget`` entry of the task: its flip front), or
        ``mask:@fewest-flips`` (``quality_front.fewest_flips``, once no run of this task is claimed
        by another process). Several processes may share one queue: each run is claimed first
        (``<json>.claim``); ``backfill`` reruns masking runs that lack the flip fraction."""
        expanded: list[str] = []
        for spec in specs:
            method, _, variant = spec.partition(":")
            budgets = self.plan[method].get("budget", {}) if variant == "@budgets" else None
            expanded += [f"{method}:{name}" for name in budgets] if budgets is not None else [spec]
        for seed in seeds:
            for spec in expanded:
                method, _, variant = spec.partition(":")
                if variant == "@fewest-flips":
                    lr, variant = self.fewest_flips()
                    if lr is None:
                        continue
                else:
                    lr = self.named(method).get(variant, (None,))[0] or self.best_lr(method)
                path = self.root / method / f"{label_of(lr, variant or None)}-s{seed}.json"
                if path.is_file() and not backfill or not claim(path):
                    continue
                try:
                    if backfill and method == "mask":
                        self.backfill_flips(lr, seed, variant or None)
                    self.run(method, lr, seed, variant or None)
                finally:
                    path.with_suffix(".claim").unlink(missing_ok=True)

    def fewest_flips(self) -> tuple[float | None, str | None]:
        """The budget setting the defaults take (``quality_front``), after waiting for the runs
        other processes hold; (None, None) when none qualifies yet."""
        from bench.quality_front import fewest_flips, front_settings
        from bench.quality_table import _runs

        while any(holder(c) not in (None, os.getpid()) for c in self.front_claims()):
            time.sleep(60)
        settings = _runs(self.root, "mask")
        label = fewest_flips(self.task, front_settings(self.task, settings))
        key = next((k for k in settings if label_of(*k) == label), None)
        log(f"quality {self.task}: fewest flips within the dev margin: {label}")
        return key if key else (None, None)

    def front_claims(self) -> list[Path]:
        """Claims of the runs the budget choice reads: every budget's, and today's default's at
        the seeds a budget ran (the choice pairs the two seed by seed). Another process training
        today's default at a new seed does not hold the choice, so two processes can share a
        queue of ``mask:@fewest-flips`` seeds."""
        from bench.quality_front import TODAY, is_budget

        def parts(path: Path) -> tuple[str, str]:  # <label>-s<seed>.json / .claim
            label, _, seed = path.stem.rpartition("-s")
            return label, seed

        folder = self.root / "mask"
        seeds = {seed for label, seed in map(parts, folder.glob("*.json")) if is_budget(label)}
        claims = []
        for mark in folder.glob("*.claim"):
            label, seed = parts(mark)
            if is_budget(label) or (label == TODAY.get(self.task) and seed in seeds):
                claims.append(mark)
        return claims

    def backfill_flips(self, lr: float, seed: int, variant: str | None) -> None:
        """Rerun a finished masking run that predates recording its flip fraction (the trainer is
        deterministic on CPU: the rerun's dev score is checked against the record's)."""
        path = self.root / "mask" / f"{label_of(lr, variant)}-s{seed}.json"
        if not path.is_file():
            return
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("flip_fraction") is not None:
            return
        path.rename(path.with_suffix(".json.old"))
        new = self.run("mask", lr, seed, variant)
        new["rerun_for_flips"] = {"old_dev": old["dev"]["score"], "old_test": old["test"]["score"]}
        write_record(path, new)
        path.with_suffix(".json.old").unlink()

    def best_lr(self, method: str, variant: str | None = None, grid: list[float] | None = None) -> float:
        """The lr grid on seed 0, extended beyond an edge that holds the best (x3 or /3)."""
        grid = sorted(grid or self.plan[method]["lr"])
        scores = {lr: self.run(method, lr, 0, variant)["dev"]["score"] for lr in grid}
        for _ in range(EXTEND):
            best = max(scores, key=lambda lr: (scores[lr], -lr))
            if best not in (min(scores), max(scores)):
                break
            new = best * 3 if best == max(scores) else best / 3
            scores[new] = self.run(method, new, 0, variant)["dev"]["score"]
        return max(scores, key=lambda lr: (scores[lr], -lr))

    def all(self) -> dict[str, Any]:
        """Phases, so that a complete table exists as early as possible: the lr grids (seed 0);
        masking's variants at its best lr (seed 0); every seed of each method's best setting;
        then the further variants (seed 0), and every seed of the best of them when its seed-0
        dev score beats the chosen setting's."""
        chosen = {method: (self.best_lr(method), None) for method in METHODS}
        lr = chosen["mask"][0]
        best = (self.run("mask", lr, 0)["dev"]["score"], lr, None)
        for variant in self.plan["mask"].get("variants", {}):
            score = self.run("mask", lr, 0, variant)["dev"]["score"]
            best = max(best, (score, lr, variant), key=lambda b: b[0])
        chosen["mask"] = best[1:]
        for method, (lr, variant) in chosen.items():
            for seed in SEEDS:
                self.run(method, lr, seed, variant)
        more = [
            (self.run("mask", own or chosen["mask"][0], 0, variant)["dev"]["score"], own or chosen["mask"][0], variant)
            for variant, (own, _) in self.plan["mask"].get("more", {}).items()
        ]
        top = max(more, default=None, key=lambda b: b[0])
        if top and top[0] > best[0]:
            for seed in SEEDS:
                self.run("mask", top[1], seed, top[2])
        return {
            method: summarise([self.run(method, lr, seed, variant) for seed in SEEDS])
            for method, (lr, variant) in chosen.items()
        }


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Written whole or not at all: another process of the queue may be reading the folder."""
    from maskctl.io import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=1))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(mark: Path) -> int | None:
    """The live process a ``.claim`` file names, or None (gone, unreadable, removed meanwhile)."""
    try:
        pid = int(mark.read_text(encoding="utf-8") or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and alive(pid) else None


def claim(path: Path) -> bool:
    """Take the run ``path`` will hold for this process: ``<json>.claim`` holds its PID, created
    exclusively; a claim whose process is gone is taken over (a stopped queue resumes)."""
    mark = path.with_suffix(".claim")
    mark.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = holder(mark)
            if pid is not None:
                return pid == os.getpid()
            mark.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
        return True
    return False


def train_maskctl(task: str, model: str | None, method: str, settings: dict[str, Any], work: Path) -> dict[str, Any]:
    """maskctl's trainer (best dev evaluation kept), then the test split on the kept state."""
    from maskctl.devices import resolve_device
    from maskctl.evaluation import evaluate_model
    from maskctl.experiments.evaluate import evaluate_bundle
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    name = f"{method}-{'-'.join(f'{k}{v}' for k, v in sorted(settings.items()))}"
    output = work / (name + (".bundle" if method == "mask" else ""))
    result = train(
        TrainArgs(model=model, task=task, method=method, output=str(output), overwrite=True, device="cpu", **settings)
    )
    if method == "mask":
        test = evaluate_bundle(output, split="test").metrics
    else:
        from maskctl.models import load_task_model, load_tokenizer, resolve_model
        from maskctl.tasks.task import get_task

        t = get_task(task)
        source = resolve_model(str(output))
        net, _ = load_task_model(source, t.kind.auto_class, t.labels)
        tokenizer = load_tokenizer(source, **t.kind.tokenizer_kwargs)
        features = t.features("test", tokenizer, settings["max_length"])
        test = evaluate_model(net, t, features, tokenizer, 64, resolve_device("cpu"))
    size, files = dir_bytes(output)
    flips = None
    if method == "mask":  # the fraction of masked weights that differ from the seed's initial mask
        from maskctl.bundle.format import read_meta
        from maskctl.bundle.stats import mask_stats

        layers = [layer for layer in mask_stats(read_meta(output)).layers if layer.flip_rate is not None]
        weights = sum(layer.weights for layer in layers)
        flips = sum(layer.flip_rate * layer.weights for layer in layers) / weights if weights else None
    shutil.rmtree(output, ignore_errors=True) if output.is_dir() else output.unlink(missing_ok=True)
    return {
        "dev": result.metrics,
        "test": test,
        "kept": result.kept,
        "history": result.history,
        "bytes": size,
        "files": files,
        "sparsity": result.sparsity,
        "flip_fraction": flips,
    }


def train_lora(task: str, model: str | None, settings: dict[str, Any], work: Path) -> dict[str, Any]:
    """PEFT LoRA r=8 (alpha 16, dropout 0.1) on query/value plus the classifier: AdamW, linear
    decay, no warm-up, clipping at 1.0 (the Trainer's defaults), best epoch on dev kept, the same
    early-stopping patience as the maskctl runs."""
    import copy

    import torch

    from bench.baselines import LORA_MAX_GRAD_NORM, lora_model, lora_training
    from bench.common import load_model, load_task
    from maskctl.evaluation import evaluate_model, make_loader
    from maskctl.models import load_tokenizer

    t = load_task(task)
    base, _, source, _ = load_model(model, task, settings["seed"])
    net = lora_model(base, t.kind.name)
    tokenizer = load_tokenizer(source, **t.kind.tokenizer_kwargs)
    length = settings["max_length"]
    train_f, dev_f, test_f = (t.features(s, tokenizer, length) for s in ("train", "dev", "test"))
    loader = make_loader(
        train_f, t.kind.collate(tokenizer), settings["batch_size"], shuffle=True, seed=settings["seed"]
    )
    params, optimizer, schedule = lora_training(net, settings["lr"], len(loader) * settings["epochs"])
    history, best, best_state = [], -math.inf, None
    cpu = torch.device("cpu")
    for epoch in range(1, settings["epochs"] + 1):
        net.train()
        for batch in loader:
            loss = net(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, LORA_MAX_GRAD_NORM)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        dev = evaluate_model(net, t, dev_f, tokenizer, 64, cpu)
        history.append({"epoch": epoch, "step": epoch * len(loader), "dev": dev})
        if dev["score"] > best:
            best, best_state = (
                dev["score"],
                copy.deepcopy(
                    {k: v for k, v in net.state_dict().items() if "lora" in k or "classifier" in k or "score" in k}
                ),
            )
            kept = {"rule": "best", "epoch": epoch, "step": epoch * len(loader)}
        if settings.get("early_stopping") and epoch - kept["epoch"] >= settings["early_stopping"]:
            break  # the same patience as maskctl's --early-stopping
    net.load_state_dict(best_state, strict=False)
    dev = evaluate_model(net, t, dev_f, tokenizer, 64, cpu)
    test = evaluate_model(net, t, test_f, tokenizer, 64, cpu)
    folder = work / f"lora-{settings['seed']}-{settings['lr']:g}"
    net.save_pretrained(str(folder))
    size, files = dir_bytes(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return {"dev": dev, "test": test, "kept": kept, "history": history, "bytes": size, "files": files}


def main(
    tasks: list[str],
    out: Path,
    work: Path,
    model: str | None = None,
    runs: list[str] | None = None,
    seeds: tuple[int, ...] | None = None,
    backfill: bool = False,
) -> int:
    """The whole search per task, or only the ``runs`` named (``Search.queued``) for ``seeds``."""
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads() // max(1, len(tasks))))
    for task in tasks:
        if runs:
            Search(task, out, work, model).queued(runs, seeds or SEEDS, backfill)
        else:
            Search(task, out, work, model).all()
    log(f"table: {write_table(out)}")
    return 0
