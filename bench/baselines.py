"""Every trainee the benchmarks build, in one place, so that no mode compares against a weaker
or a different baseline than another mode does.

* masking and finetuning are built by maskctl's own method objects
  (``maskctl.training.methods``: the trainer's parameters, groups and optimizer; finetuning is
  the ``Trainer`` recipe, AdamW without weight decay unless asked and never on biases or
  LayerNorm, tests/training/test_trainer_parity.py);
* LoRA is PEFT r=8 (alpha 16, dropout 0.1) on query/value with a trained classifier, AdamW
  without weight decay, no warm-up, linear decay to 0 and gradient clipping at 1.0: the
  ``Trainer``'s defaults, the recipe PEFT's examples train with and the one the quality search
  tuned the learning rate of.
"""

from __future__ import annotations

from typing import Any

import torch

LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["query", "value"]}
LORA_MAX_GRAD_NORM = 1.0


def maskctl_trainee(
    method: str, net: torch.nn.Module, new_keys: list[str], seed: int = 0, **settings: Any
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """``net`` prepared and its optimizer built exactly as ``maskctl train --method method``
    would (the task card's fallbacks for anything ``settings`` leaves open)."""
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import method_for

    args = TrainArgs(method=method, seed=seed, **settings).with_task_defaults({})
    trainee = method_for(args)
    trainee.attach(net, new_keys)
    return net, trainee.optimizer(net, trainee.trainable(net))


def lora_config(kind: str, **overrides: Any):
    """PEFT's ``LoraConfig`` for a maskctl kind name (sequence or token classification)."""
    from peft import LoraConfig, TaskType

    task_type = TaskType.SEQ_CLS if kind.startswith("sequence") else TaskType.TOKEN_CLS
    return LoraConfig(task_type=task_type, **{**LORA, **overrides})


def lora_model(base: torch.nn.Module, kind: str, **overrides: Any):
    """``base`` (a task model with its head) with a LoRA adapter; the classifier trains too."""
    from peft import get_peft_model

    return get_peft_model(base, lora_config(kind, **overrides))


def lora_training(net: torch.nn.Module, lr: float, total_steps: int):
    """(trainable parameters, optimizer, schedule) of the LoRA recipe above."""
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    return params, optimizer, get_linear_schedule_with_warmup(optimizer, 0, total_steps)
