"""The method objects on their own: what each trains, how its optimizer treats it, what a kept
best state holds, and where its output goes by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from maskctl.models import load_task_model, resolve_model
from maskctl.tasks.task import get_task
from maskctl.train_settings import TrainArgs
from maskctl.training.methods import FinetuneMethod, MaskMethod
from maskctl.training.trainer import method_for


def _setup(tiny_bert, keyword_task, **kw):
    args = TrainArgs(model=str(tiny_bert), task=str(keyword_task), **kw).with_task_defaults({})
    task = get_task(str(keyword_task))
    torch.manual_seed(0)
    model, new_keys = load_task_model(resolve_model(str(tiny_bert)), task.kind.auto_class, task.labels)
    method = method_for(args)
    method.attach(model, new_keys)
    return method, model, new_keys


def _norms(model) -> set[str]:
    return {
        f"{name}.{p}"
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.LayerNorm)
        for p, _ in m.named_parameters(recurse=False)
    }


def test_masking_trains_only_the_scores(tiny_bert, keyword_task):
    method, model, _ = _setup(tiny_bert, keyword_task)
    assert isinstance(method, MaskMethod)
    trainable = method.trainable(model)
    assert trainable and all(name.endswith(".scores") for name in trainable)
    assert "classifier.scores" in trainable  # the paper masks the classifier too
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert not frozen & set(trainable) and any(n.endswith("bias") for n in frozen)
    optimizer = method.optimizer(model, trainable)
    assert type(optimizer) is torch.optim.Adam and len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["weight_decay"] == 0.0
    assert method.scheduler(optimizer, 10) is None  # no schedule: the official code's setting


def test_a_trained_head_trains_the_classifier_beside_the_scores(tiny_bert, keyword_task):
    method, model, new_keys = _setup(tiny_bert, keyword_task, head="train")
    trainable = method.trainable(model)
    plain = {n for n in trainable if not n.endswith(".scores")}
    assert plain == {"classifier.weight", "classifier.bias"} == set(new_keys)
    assert "classifier.scores" not in trainable
    snapshot = method.snapshot(model)  # a kept best holds masks and the stored (head) tensors, not weights
    assert {k for k in snapshot if k.startswith("head/")} == {f"head/{k}" for k in method.stored_keys()}
    assert all(k.startswith(("mask/", "head/")) for k in snapshot)
    assert all(v.dtype == torch.bool for k, v in snapshot.items() if k.startswith("mask/"))


def test_finetuning_never_decays_biases_or_layernorm(tiny_bert, keyword_task):
    method, model, _ = _setup(tiny_bert, keyword_task, method="finetune", weight_decay=0.01, warmup_ratio=0.1)
    assert isinstance(method, FinetuneMethod)
    trainable = method.trainable(model)
    assert set(trainable) == {n for n, _ in model.named_parameters()}
    names = {id(p): n for n, p in trainable.items()}
    decay, spared = method.param_groups(model, trainable)
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in spared["params"]}
    assert decay["weight_decay"] == 0.01 and spared["weight_decay"] == 0.0
    assert decayed | kept == set(trainable) and not decayed & kept
    norms = _norms(model)
    assert norms and norms <= kept
    assert {n for n in trainable if n.endswith("bias")} <= kept
    assert all(n.endswith("weight") and n not in norms for n in decayed)
    optimizer = method.optimizer(model, trainable)
    assert type(optimizer) is torch.optim.AdamW and [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]


def test_finetuning_warms_up_then_decays_linearly(tiny_bert, keyword_task):
    method, model, _ = _setup(tiny_bert, keyword_task, method="finetune", lr=1e-3, warmup_ratio=0.2)
    optimizer = method.optimizer(model, method.trainable(model))
    assert type(optimizer) is torch.optim.AdamW and len(optimizer.param_groups) == 1
    scheduler = method.scheduler(optimizer, 10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # 2 warm-up steps to the peak, then down by 1/8 of it each step towards 0 at step 10
    assert lrs[:3] == pytest.approx([0.0, 5e-4, 1e-3]) and lrs[-1] == pytest.approx(1e-3 / 8)


def test_default_outputs_follow_the_method():
    assert MaskMethod.default_output("sst2", "bert") == Path("masks") / "sst2-bert.bundle"
    assert FinetuneMethod.default_output("sst2", "bert") == Path("finetuned") / "sst2-bert"
