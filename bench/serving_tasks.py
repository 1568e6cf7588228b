"""The tasks and texts ``bench/run.py --serving`` serves: task bundles at the flip rate of trained
ones, the random BERT-base, the LoRA peer, and the request texts.

Task variants: one real bbc-news bundle gives the head, the card and the description; each
variant's encoder masks are its initial mask (regenerated from the seed, as serving does) with
``FLIP_FRACTION`` of the masked weights flipped at random, ``ADDED_SHARE`` of them adding back a
weight the initial mask removes (the rest removing one it keeps), as trained bbc-news bundles
do. A served task's cost depends on how many bits it flips, not on which, so these variants
cost what trained tasks cost. 20 distinct variants; renamed copies beyond them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from bench.common import log

# bbc-news with the default recipe (lr 1e-3, 3 epochs, at most 1 % of the mask bits flipped, the
# card's --max-flips): exactly 1 % of the masked weights differ from the initial mask, 32-39 % of
# the flips adding a weight back (its sparsity 5.00 % -> 5.23-5.36 %;
# bench/results/quality/bbc-news/mask/lr0.001-budget-1-s0..s4.json: 36 % on average).
FLIP_FRACTION = 0.01
ADDED_SHARE = 0.36
VARIANTS = 20


def variant_masks(bundle, fraction: float, seed: int) -> dict[str, torch.Tensor]:
    """The bundle's masks with every encoder layer replaced by its initial mask with ``fraction``
    of it flipped (the head's masks kept)."""
    from maskctl.bundle.mask_coding import InitialMasks

    initial = InitialMasks.from_settings(bundle.meta["mask"])
    rng = np.random.default_rng(seed)
    out = {}
    for name, mask in bundle.masks.items():
        if name.startswith(("classifier", "score")) or initial is None:
            out[name] = mask
            continue
        reference = initial.mask(initial.scores(name, mask.numel())).reshape(tuple(mask.shape))
        keep = reference.mean()
        draw = rng.random(reference.shape)
        flipped = np.where(
            reference, draw < fraction * (1 - ADDED_SHARE) / keep, draw < fraction * ADDED_SHARE / (1 - keep)
        )
        out[name] = torch.from_numpy(reference ^ flipped)
    return out


def make_bundles(
    work: Path, model: str | None, count: int, real: Path | None = None, fraction: float = FLIP_FRACTION
) -> list[Path]:
    """One real bbc-news bundle (or ``real``), then ``count`` task bundles made from it."""
    from maskctl.bundle.format import Bundle, load_bundle, save_bundle
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    work.mkdir(parents=True, exist_ok=True)
    if real is None:
        real = work / "real.bundle"
        if not real.exists():
            log("serving: training the real bbc-news bundle (1 epoch over 256 articles) ...")
            train(
                TrainArgs(
                    model=model,
                    task="bbc-news",
                    output=str(real),
                    epochs=1,
                    max_train_samples=256,
                    overwrite=True,
                    device="cpu",
                )
            )
    bundle = load_bundle(real)
    variants = work / f"flips-{fraction:g}"  # a folder of another rate is not reused
    variants.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = variants / f"task{i:04d}.bundle"
        if not path.exists():
            if i < VARIANTS:
                meta = {**bundle.meta, "task": {**bundle.meta["task"], "name": f"news-{i:04d}"}}
                save_bundle(Bundle(masks=variant_masks(bundle, fraction, i), head=bundle.head, meta=meta), path)
            else:
                _renamed_copy(paths[i % VARIANTS], path, f"news-{i:04d}")
        paths.append(path)
    return paths


def _renamed_copy(source: Path, target: Path, name: str) -> None:
    """The same coded masks under another task name (no re-encoding: memory is what is measured)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
    meta = json.loads(metadata["maskctl"])  # the bundle's self-description (maskctl.bundle.format)
    meta["task"]["name"] = name
    metadata["maskctl"] = json.dumps(meta)
    save_file(tensors, str(target), metadata=metadata)


def texts(long: bool) -> list[str]:
    """Request texts: the first 18 words (~24 tokens) or 110 words (cut at 128 tokens) of
    bbc-news test articles."""
    from maskctl.tasks.task import get_task

    articles = [ex["text"] for ex in get_task("bbc-news").examples("test")]
    words = 110 if long else 18
    return [" ".join(a.split()[:words]) for a in articles[:64]]


def lora_server(model: str | None, seed: int = 0):
    """The peer: PEFT LoRA r=8 on query/value with a classifier per adapter (random B, so each
    adapter really adds), one adapter ``a0``. Returns (model, source)."""
    from peft import get_peft_model

    from bench.common import load_model

    base, _, source, _ = load_model(model, "bbc-news", seed)
    net = get_peft_model(base, _lora_config(), adapter_name="a0")
    return net.eval(), source


def _lora_config():
    from bench.baselines import lora_config

    # no dropout module at inference, as served adapters are measured
    return lora_config("sequence-classification", lora_dropout=0.0, init_lora_weights=False)


def add_adapters(net, tasks: int, deadline: float | None = None) -> int:
    """Adapters ``a1``... until ``tasks`` in all, or until ``deadline`` (``time.monotonic``):
    PEFT's ``add_adapter`` slows with every adapter. Returns how many the model holds."""
    import time

    config = _lora_config()
    held = len(net.peft_config)
    while held < tasks and (deadline is None or time.monotonic() < deadline):
        net.add_adapter(f"a{held}", config)
        held += 1
    return held


def bert_base_folder(work: Path) -> Path:
    """A random BERT-base (the shipped config) saved with the packaged MiniLM's tokenizer: speed
    and memory do not depend on trained values, and the vocabulary is the same uncased one."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from maskctl.models import load_tokenizer, resolve_model, save_model_folder

    folder = work / "bert-base-random"
    if not (folder / "config.json").exists():
        config = AutoConfig.from_pretrained(
            Path(__file__).resolve().parents[1] / "maskctl" / "sizing_configs" / "bert-base-uncased.json"
        )
        torch.manual_seed(0)
        save_model_folder(
            AutoModelForSequenceClassification.from_config(config), load_tokenizer(resolve_model(None)), folder
        )
    return folder


def bert_base_bundle(work: Path, folder: Path) -> Path:
    """A bbc-news bundle of the random BERT-base: one step on 16 articles (8 more as dev)."""
    from maskctl.tasks.task import get_task
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    real = work / "bert-base-real.bundle"
    if not real.exists():
        rows = [{"text": ex["text"], "label": ex["label"]} for ex in get_task("bbc-news").examples("train")[:24]]
        for name, part in (("train", rows[:16]), ("dev", rows[16:])):
            (work / f"bert-base-{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
        log("serving: one training step of a random BERT-base on 16 bbc-news articles ...")
        train(
            TrainArgs(
                model=str(folder),
                train_file=str(work / "bert-base-train.jsonl"),
                validation_file=str(work / "bert-base-dev.jsonl"),
                task_name="news-base",
                output=str(real),
                max_steps=1,
                batch_size=16,
                overwrite=True,
                device="cpu",
            )
        )
    return real
