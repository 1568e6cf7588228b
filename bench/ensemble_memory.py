"""Figure 5: peak memory of a 4-bundle ensemble against a 1-bundle eval, each in a fresh child
process (``child_eval_memory``, run through ``run.py --child eval-memory``).

Members are figure 7's trained bundles where there are some, topped up with variants (a trained
bundle with a few mask bits flipped, as seeds differ); in quick mode, which trains nothing, a tiny
CSV task is written and trained for one step so that the ensemble has a real bundle to start from.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import peak_rss_mib, rss_mib, run_child


def child_eval_memory(paths: list[str], split: str) -> dict:
    """In a fresh process: peak RSS of evaluating one bundle, or an ensemble of several, on ``split``."""
    baseline = rss_mib()
    t0 = time.perf_counter()
    if len(paths) == 1:
        from maskctl.experiments.evaluate import evaluate_bundle

        score = evaluate_bundle(paths[0], split=split, device="cpu").metrics["score"]
    else:
        from maskctl.experiments.ensemble import run_ensemble

        result = run_ensemble(paths, by="best", split=split, device="cpu")
        score = result.rules[result.chosen]["score"]
    return {
        "members": len(paths),
        "peak_rss_mib": peak_rss_mib(),
        "baseline_rss_mib": baseline,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "seconds": time.perf_counter() - t0,
        "score": score,
    }


def bench_ensemble_memory(paths: list[Path], split: str = "dev") -> dict[str, Any]:
    one = run_child("eval-memory", {"paths": [str(paths[0])], "split": split})
    many = run_child("eval-memory", {"paths": [str(p) for p in paths], "split": split})
    return {
        "eval": one,
        "ensemble": many,
        "members": len(paths),
        "split": split,
        "ratio": many["peak_rss_mib"] / one["peak_rss_mib"],
        "ratio_above_imports": (many["peak_rss_mib"] - many["baseline_rss_mib"])
        / (one["peak_rss_mib"] - one["baseline_rss_mib"]),
    }


def ensemble_section(trained: dict[str, list[Path]], model: str | None, work: Path) -> dict[str, Any]:
    """Figure 5 as ``run_all`` runs it: 4 members from ``trained`` (task -> mask bundles, figure 7)
    or from the tiny task, and a note of where they came from."""
    # wnut16's dev split is short tweets: 4 members cost far less than 4 passes over bbc-news.
    task = next((t for t in ("wnut16", "bbc-news") if trained.get(t)), None)
    if task is not None:
        paths = trained[task][:4]
        paths += variant_bundles(paths[0], 4 - len(paths), work)
        what = f"{task}, {len(trained[task][:4])} trained seeds + {4 - len(trained[task][:4])} variant(s)"
    else:
        card = write_tiny_task(work / "tiny-task")
        first = tiny_trained_bundle(model, card, work / "tiny-0.bundle")
        paths = [first] + variant_bundles(first, 3, work)
        what = "tiny csv task, 1 trained bundle + 3 variants"
    return {**bench_ensemble_memory(paths, "dev"), "task": what}


def variant_bundles(path: Path, count: int, work: Path, flip_rate: float = 0.005) -> list[Path]:
    """``count`` more bundles from one trained bundle, each with a different ``flip_rate`` of
    its mask bits flipped (seed-to-seed differences), same base, task and head."""
    from maskctl.bundle.format import Bundle, load_bundle, save_bundle

    bundle = load_bundle(path)
    out = []
    for k in range(count):
        generator = torch.Generator().manual_seed(100 + k)
        masks = {
            name: mask ^ (torch.rand(mask.shape, generator=generator) < flip_rate)
            for name, mask in bundle.masks.items()
        }
        out.append(
            save_bundle(Bundle(masks=masks, head=bundle.head, meta=dict(bundle.meta)), work / f"variant-{k}.bundle")
        )
    return out


# ----------------------------------------------------------------------------- tiny task


def write_tiny_task(root: Path, n_train: int = 64, n_dev: int = 32) -> Path:
    """A small 2-class CSV task card (keyword decides the label) for quick runs and BERT-base."""
    import csv
    import random

    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    words = {"pos": ["good", "great", "fine"], "neg": ["bad", "awful", "poor"]}
    filler = [
        "the",
        "a",
        "film",
        "plot",
        "actor",
        "story",
        "was",
        "is",
        "very",
        "really",
        "and",
        "it",
        "this",
        "that",
        "show",
    ]
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_dev)):
        with (root / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence", "label"])
            for i in range(n):
                label = ("pos", "neg")[i % 2]
                text = rng.choices(filler, k=rng.randint(4, 10))
                text.insert(rng.randint(0, len(text)), rng.choice(words[label]))
                writer.writerow([" ".join(text), label])
    card = root / "tiny.yaml"
    card.write_text(
        "name: bench-tiny\nkind: sequence-classification\nlabels: [pos, neg]\nmetric: accuracy\n"
        "fields: {text: sentence}\nsource: {reader: csv, files: {train: train.csv, dev: dev.csv, "
        "test: test.csv}}\ndefaults: {epochs: 1}\n",
        encoding="utf-8",
    )
    return card


def tiny_trained_bundle(model: str | None, card: Path, path: Path, seed: int = 0) -> Path:
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    return train(
        TrainArgs(
            model=model,
            task=str(card),
            output=str(path),
            max_steps=1,
            batch_size=16,
            seed=seed,
            overwrite=True,
            device="cpu",
        )
    ).output
