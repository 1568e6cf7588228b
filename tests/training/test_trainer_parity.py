"""``maskctl train --method finetune`` is the Hugging Face ``Trainer`` recipe, step for step.

Both train the same tiny model (dropout off, the same seeded head) on the same encoded features
with one full batch per step, so the data order cannot matter and the loss curves must agree
to the Trainer's logging precision. A run with clipping off must *not* agree: that proves the
comparison can fail (the old trainer, with no clipping, 10 % warm-up and decay on every
weight, learned far slower than the Trainer on wnut16).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from maskctl.models import load_task_model, load_tokenizer, resolve_model
from maskctl.tasks.task import get_task
from maskctl.train_settings import TrainArgs
from maskctl.training.callbacks import TrainCallback
from maskctl.training.trainer import train
from tests.conftest import make_sentences

STEPS = 10
TOL = 2e-4  # the Trainer logs losses rounded to 4 decimals


@pytest.fixture(scope="module")
def no_dropout_bert(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT with dropout off, so both runs are deterministic."""
    folder = tmp_path_factory.mktemp("nodrop")
    for f in tiny_bert.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def tagging_task(tmp_path_factory) -> Path:
    """Keyword tagging: the keyword of each sentence is ``B-KEY``, every other word ``O``."""
    from tests.conftest import GROUPS

    root = tmp_path_factory.mktemp("tagging")
    keys = {w for group in GROUPS.values() for w in group}
    for split, seed in (("train", 3), ("dev", 4), ("test", 5)):
        lines = []
        for sentence, _ in make_sentences(48, seed):
            lines += [f"{w}\t{'B-KEY' if w in keys else 'O'}" for w in sentence.split()] + [""]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    card = root / "keytags.yaml"
    card.write_text(
        "name: keytags\nkind: token-tagging\nlabels: [O, B-KEY]\nmetric: seqeval-f1\n"
        'source: {reader: conll, columns: 2, token_column: 0, tag_column: 1, delimiter: "\\t",\n'
        "         files: {train: train.txt, dev: dev.txt, test: test.txt}}\n",
        encoding="utf-8",
    )
    return card


class Losses(TrainCallback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step(self, step, total, loss, examples_per_s) -> None:
        self.losses.append(loss)


def maskctl_losses(model: Path, card: Path, out: Path, n_train: int, **settings) -> list[float]:
    seen = Losses()
    train(
        TrainArgs(
            model=str(model),
            task=str(card),
            output=str(out),
            method="finetune",
            batch_size=n_train,
            epochs=STEPS,
            seed=7,
            max_length=32,
            keep="last",
            **settings,
        ),
        callback=seen,
    )
    return seen.losses


def trainer_losses(
    model: Path, card: Path, out: Path, lr: float, weight_decay: float, warmup_ratio: float, max_grad_norm: float
) -> tuple[list[float], int]:
    from transformers import Trainer, TrainingArguments, set_seed

    task = get_task(str(card))
    source = resolve_model(str(model))
    tokenizer = load_tokenizer(source, **task.kind.tokenizer_kwargs)
    features = task.features("train", tokenizer, 32)
    set_seed(7)  # what maskctl does before it loads the model: the same random head
    net, _ = load_task_model(source, task.kind.auto_class, task.labels)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=len(features),
        num_train_epochs=STEPS,
        learning_rate=lr,
        weight_decay=weight_decay,
        **_warmup(warmup_ratio),
        max_grad_norm=max_grad_norm,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=net, args=args, train_dataset=list(features.items), data_collator=task.kind.collate(tokenizer)
    )
    trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h], len(features)


def _warmup(ratio: float) -> dict:
    """transformers 5 takes a ratio as ``warmup_steps`` < 1; 4.x has ``warmup_ratio``."""
    import inspect

    from transformers import TrainingArguments

    has_ratio = "warmup_ratio" in inspect.signature(TrainingArguments.__init__).parameters
    return {"warmup_ratio": ratio} if has_ratio else {"warmup_steps": ratio}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sequence-classification", "token-tagging"])
@pytest.mark.parametrize(
    "settings",
    [
        dict(lr=1e-2, weight_decay=0.0, warmup_ratio=0.0, max_grad_norm=0.05),
        dict(lr=1e-2, weight_decay=0.1, warmup_ratio=0.2, max_grad_norm=0.05),
    ],
    ids=["defaults-shape", "decay-and-warmup"],
)
def test_finetuning_follows_the_trainer_loss_curve(
    kind, settings, no_dropout_bert, keyword_task, tagging_task, tmp_path
):
    card = keyword_task if kind == "sequence-classification" else tagging_task
    expected, n_train = trainer_losses(no_dropout_bert, card, tmp_path / "hf", **settings)
    ours = maskctl_losses(no_dropout_bert, card, tmp_path / "ours", n_train, **settings)
    assert len(ours) == len(expected) == STEPS
    assert max(abs(a - b) for a, b in zip(ours, expected)) < TOL, (ours, expected)
    assert expected[-1] < expected[0] - 0.05  # both really learn

    # The comparison can fail: without clipping the curve leaves the Trainer's.
    unclipped = maskctl_losses(
        no_dropout_bert, card, tmp_path / "unclipped", n_train, **{**settings, "max_grad_norm": 0.0}
    )
    assert max(abs(a - b) for a, b in zip(unclipped, expected)) > 10 * TOL


def test_finetuning_defaults_are_the_trainers():
    from transformers import TrainingArguments

    from maskctl.train_settings import FALLBACKS

    hf = TrainingArguments(output_dir="unused", report_to=[])
    args = TrainArgs(method="finetune").with_task_defaults({})
    assert (args.lr, args.weight_decay, args.warmup_ratio, args.max_grad_norm) == (
        hf.learning_rate,
        hf.weight_decay,
        getattr(hf, "warmup_ratio", None) or hf.warmup_steps,
        hf.max_grad_norm,
    )
    assert hf.lr_scheduler_type == "linear" and FALLBACKS["max_grad_norm"]["finetune"] == 1.0
    assert torch.optim.AdamW is not None
