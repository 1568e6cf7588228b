"""One object per training method: what trains, how it is optimised, what a kept best state
holds, and what the run writes.

Why: the loop (``trainer.py``) is the same for masking and finetuning: batches, accumulation,
clipping, evaluation, checkpoints. Everything that differs lives here, so the loop never asks
which method it runs, and a new way of training is a change to one class. For masking the
three seams a variant would touch are single methods: ``trainable`` (which tensors train),
``param_groups`` (how the optimizer treats them) and ``stored_keys`` (which tensors besides
the masks the bundle stores; a kept best state and the output both follow it).

* ``MaskMethod`` (Zhao et al. 2020): every selected linear becomes a ``MaskedLinear``; only its
  scores train (and the classifier with ``head=train``, and with ``--also-train`` the masked
  blocks' biases / LayerNorms in a group of their own lr), with Adam, no weight decay and no
  schedule (the official code's setting). The output is a ``*.bundle``.
* ``FinetuneMethod``: the Hugging Face ``Trainer``'s recipe, AdamW with decay never on biases or
  LayerNorm, linear decay after an optional warm-up. The output is a ``save_pretrained`` folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from maskctl.bundle.fingerprint import fingerprint, tensors_fingerprint
from maskctl.bundle.format import FORMAT_VERSION, Bundle, check_bundle_output, save_bundle
from maskctl.bundle.meta import (
    BaseModelInfo,
    BundleMeta,
    LayerRecord,
    MaskRecord,
    MetricsRecord,
    TaskRecord,
    TrainingRecord,
    TunedRecord,
)
from maskctl.bundle.portable import without_paths
from maskctl.io import atomic_dir
from maskctl.masking.config import MaskConfig
from maskctl.masking.flip_budget import FlipBudget
from maskctl.masking.flip_penalty import FlipPenalty
from maskctl.masking.model import current_masks, masked_layers, merge_masks, sparsity, wrap_model
from maskctl.masking.targets import num_blocks, parse_blocks
from maskctl.masking.tuned import deltas_of, parameter, pristine_values, tuned_names, tuned_value
from maskctl.models import ModelSource, save_model_folder
from maskctl.tasks.task import Task
from maskctl.training.selection import BestKeeper
from maskctl.training.tracking import LossCurve
from maskctl.version import __version__

if TYPE_CHECKING:  # annotations only: train_settings names these classes in METHODS (no cycle)
    from maskctl.train_settings import TrainArgs

INITIAL_SCORES = (
    "numpy PCG64 seeded with sha256(f'{seed}:{layer}')[:8] little-endian; "
    "scores ~ U(-0.02, (0.02+threshold)/init_sparsity - 0.02) as float32"
)


@dataclass
class TrainResult:
    """What ``train`` returns: where the output is, its dev metrics (of the kept state, as
    ``maskctl eval`` reproduces them), the dev history and which evaluation was kept."""

    output: Path
    method: str
    metrics: dict[str, float]
    wall_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    sparsity: dict[str, float] = field(default_factory=dict)
    kept: dict[str, Any] = field(default_factory=dict)  # which evaluation the output holds


@dataclass
class Outcome:
    """What a finished run hands its method to write. ``score`` is the trainer's final dev
    evaluation of the state the method puts back (the trainer owns evaluation, so the model is
    scored exactly as during training)."""

    task: Task
    source: ModelSource
    tokenizer: Any
    output: Path
    keeper: BestKeeper
    curve: LossCurve
    score: Callable[[torch.nn.Module], dict[str, float]]


def decay_groups(
    model: torch.nn.Module, trainable: dict[str, torch.nn.Parameter], weight_decay: float | None
) -> list[dict[str, Any]]:
    """One group without weight decay, or, as the ``Trainer`` does, decay on every tensor but
    biases and LayerNorm weights (decay pulls a norm's gain towards 0, which no recipe wants)."""
    if not weight_decay:
        return [{"params": list(trainable.values())}]
    norms = {
        f"{name}.{p}" if name else p
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.LayerNorm)
        for p, _ in module.named_parameters(recurse=False)
    }
    spared = {n for n in trainable if n.endswith("bias") or n in norms}
    return [
        {"params": [p for n, p in trainable.items() if n not in spared], "weight_decay": weight_decay},
        {"params": [p for n, p in trainable.items() if n in spared], "weight_decay": 0.0},
    ]


class TrainingMethod:
    """The base: every hook the loop calls, with the behaviour both methods share."""

    name = ""
    folder = ""  # where default outputs go
    suffix = ""  # of a default output's name
    plain_optimizer: type[torch.optim.Optimizer] = torch.optim.AdamW  # without weight decay

    def __init__(self, args: TrainArgs) -> None:
        self.args = args
        self.new_keys: list[str] = []

    @classmethod
    def default_output(cls, task_name: str, model_name: str) -> Path:
        """Where a run writes without ``--output`` (sweeps name their points the same way)."""
        return Path(cls.folder) / f"{task_name}-{model_name}{cls.suffix}"

    def check_output(self, output: Path) -> None:
        """Refuse an output path this method cannot write, before any loading."""

    def attach(self, model: torch.nn.Module, new_keys: list[str]) -> None:
        """Prepare the freshly loaded model; ``new_keys`` are the parameters its checkpoint lacked."""
        self.new_keys = list(new_keys)

    def trainable(self, model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        """The tensors the optimizer updates, by name (also what a checkpoint stores)."""
        raise NotImplementedError

    def param_groups(self, model: torch.nn.Module, trainable: dict[str, torch.nn.Parameter]) -> list[dict[str, Any]]:
        """How the optimizer treats the trainable tensors: the ``Trainer``'s grouping."""
        return decay_groups(model, trainable, self.args.weight_decay)

    def optimizer(self, model: torch.nn.Module, trainable: dict[str, torch.nn.Parameter]) -> torch.optim.Optimizer:
        """AdamW over the groups with weight decay, else the method's plain optimizer (which
        optimizer class a run used is part of its result, so it never changes silently)."""
        groups = self.param_groups(model, trainable)
        if self.args.weight_decay:  # each group names its own decay
            return torch.optim.AdamW(groups, lr=self.args.lr)
        return self.plain_optimizer(groups, lr=self.args.lr, weight_decay=0.0)

    def scheduler(self, optimizer: torch.optim.Optimizer, total: int):
        """The learning-rate schedule stepped after each optimizer step, or None (constant)."""
        return

    def on_device(self, model: torch.nn.Module) -> None:
        """Called once the model sits on its training device (after ``accelerator.prepare``)."""

    def after_step(self, lr: float) -> None:
        """Called after each optimizer step that applied gradients, with the lr it used."""

    def before_step(self) -> None:
        """Called before each optimizer step that applies gradients, with the gradients it applies."""

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """Tensors of the method's own that a checkpoint must carry (names start with ``method/``)."""
        return {}

    def restore_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back ``checkpoint_state``'s tensors (called before ``on_device``)."""

    def sparsity(self, model: torch.nn.Module) -> float | None:
        """What an evaluation reports beside the metrics: the mask's share of zeros, or None."""
        return None

    def snapshot(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The state ``--keep best`` copies at a new best (and checkpoints carry)."""
        raise NotImplementedError

    def finish(self, model: torch.nn.Module, outcome: Outcome) -> TrainResult:
        """Put the kept state back, score it and write the output."""
        raise NotImplementedError


class MaskMethod(TrainingMethod):
    """Learn a binary mask over the frozen weights; write a bundle."""

    name, folder, suffix = "mask", "masks", ".bundle"
    plain_optimizer = torch.optim.Adam  # the paper's

    def __init__(self, args: TrainArgs) -> None:
        super().__init__(args)
        self.config = MaskConfig(
            threshold=args.threshold,
            init_sparsity=args.init_sparsity,
            blocks=args.mask_blocks,
            head=args.head,
            seed=args.seed,
        )
        self.pull: FlipPenalty | None = None
        self.budget: FlipBudget | None = None
        self.restored: dict[str, torch.Tensor] = {}  # a checkpoint's flip importance, until on_device

    def check_output(self, output: Path) -> None:
        check_bundle_output(output)

    def attach(self, model: torch.nn.Module, new_keys: list[str]) -> None:
        """Wrap the selected linears and record what the bundle needs of the untouched model:
        the fingerprint of the pretrained weights it masks, and each mask's initial sparsity."""
        super().attach(model, new_keys)
        self.block_ids = parse_blocks(self.args.mask_blocks, num_blocks(model))
        names = wrap_model(model, self.config)
        self.fp_layers = [n for n in names if f"{n}.weight" not in new_keys]
        self.fingerprint = fingerprint(model, self.fp_layers)
        self.init_sparsity = {n: sparsity(m) for n, m in current_masks(model).items()}
        # --also-train: trained beside the mask, stored as deltas from these pristine values
        self.pristine = pristine_values(model, tuned_names(model, self.block_ids, self.args.also_train))
        for name in self.pristine:
            parameter(model, name).requires_grad_(True)

    def trainable(self, model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        """What ``attach`` left trainable: the scores, the classifier with ``head=train``, and
        the ``--also-train`` tensors."""
        return {n: p for n, p in model.named_parameters() if p.requires_grad}

    def param_groups(self, model: torch.nn.Module, trainable: dict[str, torch.nn.Parameter]) -> list[dict[str, Any]]:
        """One group of scores, no decay (the paper's); ``--weight-decay`` gives the ``Trainer``'s
        two groups. The ``--also-train`` tensors form a group of their own (``--tuned-lr``, no
        decay): a score moves the mask only across the threshold, a bias moves every output."""
        tuned = {id(parameter(model, name)) for name in self.pristine}
        rest = {n: p for n, p in trainable.items() if id(p) not in tuned}
        groups = decay_groups(model, rest, self.args.weight_decay)
        if tuned:
            groups.append(
                {
                    "params": [p for p in trainable.values() if id(p) in tuned],
                    "lr": self.args.tuned_lr,
                    "weight_decay": 0.0,
                }
            )
        return groups

    def stored_keys(self) -> list[str]:
        """The tensors besides the masks that the bundle stores: the parameters the base
        checkpoint lacked (a new classifier), which the mask alone cannot rebuild."""
        return list(self.new_keys)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The flip budget's accumulated importance (``--max-flips``)."""
        importance = self.budget.importance if self.budget is not None else {}
        return {f"method/flip_importance/{name}": value for name, value in importance.items()}

    def restore_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.restored = {
            k.removeprefix("method/flip_importance/"): v
            for k, v in tensors.items()
            if k.startswith("method/flip_importance/")
        }

    def on_device(self, model: torch.nn.Module) -> None:
        if self.args.flip_penalty:  # the pull keeps each score's initial side, on the scores' device
            self.pull = FlipPenalty.of(model, self.args.flip_penalty)
        if self.args.max_flips is not None and self.args.max_flips < 1.0:  # 100 %: no bound (a card's lifted)
            self.budget = FlipBudget(masked_layers(model), self.args.max_flips)
            for name, value in self.restored.items():
                self.budget.importance[name].copy_(value)
            self.budget.hold()  # a resumed run: the same bits held as when its checkpoint was written

    def before_step(self) -> None:
        if self.budget is not None:
            self.budget.accumulate()

    def after_step(self, lr: float) -> None:
        if self.pull is not None:
            self.pull.step(lr)
        if self.budget is not None:
            self.budget.hold()

    def sparsity(self, model: torch.nn.Module) -> float:
        """Share of zeros over every mask, as the bundle's ``sparsity.final`` counts it."""
        masks = current_masks(model).values()
        return sum(m.numel() - int(m.sum()) for m in masks) / max(sum(m.numel() for m in masks), 1)

    def snapshot(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The binary masks and stored tensors: a few MB, whatever the model's size."""
        return {
            **{f"mask/{n}": m.clone() for n, m in current_masks(model).items()},
            **{f"head/{k}": v for k, v in self._stored_tensors(model).items()},
            **{f"tuned/{k}": v for k, v in deltas_of(model, self.pristine).items()},
        }

    def _stored_tensors(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Current values of ``stored_keys``, read through any ``MaskedLinear`` wrapper."""
        wrapped = masked_layers(model)
        tensors = {}
        for key in self.stored_keys():
            module_name, _, param = key.rpartition(".")
            module = wrapped[module_name].base_layer if module_name in wrapped else model.get_submodule(module_name)
            tensors[key] = getattr(module, param).detach().float().cpu().clone()
        return tensors

    def finish(self, model: torch.nn.Module, outcome: Outcome) -> TrainResult:
        """Merge the kept masks into the weights (the very model ``maskctl eval`` rebuilds),
        score it, and save the bundle that describes it."""
        kept = outcome.keeper.kept_state()
        if kept is None:
            masks, head, deltas = current_masks(model), self._stored_tensors(model), deltas_of(model, self.pristine)
        else:
            # in the model's layer order, whatever order a checkpoint gave back: the bytes must not vary
            masks = {n: kept[f"mask/{n}"] for n in masked_layers(model)}
            head = {k: kept[f"head/{k}"] for k in self.stored_keys()}
            deltas = {k: kept[f"tuned/{k}"] for k in self.pristine}
        merge_masks(model, masks if kept is not None else None)
        if kept is not None:
            model.load_state_dict(head, strict=False)
        with torch.no_grad():  # the stored float16 deltas on the pristine values: what every reader rebuilds
            for name, delta in deltas.items():
                parameter(model, name).copy_(tuned_value(self.pristine[name], delta))
        metrics = outcome.score(model)
        overall = self._overall_sparsity(masks)
        meta = self._meta(model, outcome, masks, head, overall, metrics)
        path = save_bundle(Bundle(masks=masks, head=head, meta=meta, tuned=deltas), outcome.output)
        return TrainResult(
            output=path,
            method=self.name,
            metrics=metrics,
            wall_seconds=0.0,
            history=outcome.keeper.history,
            sparsity=overall,
            kept=outcome.keeper.record_of_kept(),
        )

    def _overall_sparsity(self, masks: dict[str, torch.Tensor]) -> dict[str, float]:
        total = sum(m.numel() for m in masks.values())
        return {
            "init": sum(self.init_sparsity[n] * masks[n].numel() for n in masks) / total,
            "final": sum(sparsity(masks[n]) * masks[n].numel() for n in masks) / total,
        }

    def _meta(
        self,
        model: torch.nn.Module,
        outcome: Outcome,
        masks: dict[str, torch.Tensor],
        head: dict[str, torch.Tensor],
        overall: dict[str, float],
        metrics: dict[str, float],
    ) -> dict[str, Any]:
        """The bundle's self-description: enough to rebuild, check and reproduce the run."""
        keeper = outcome.keeper
        return BundleMeta(
            format_version=FORMAT_VERSION,
            base_model=BaseModelInfo(
                source=outcome.source.to_dict(),
                model_type=model.config.model_type,
                fingerprint=self.fingerprint,
                fingerprint_layers=self.fp_layers,
                num_blocks=num_blocks(model),
            ),
            task=TaskRecord(outcome.task.card.to_dict()),
            mask=MaskRecord(**self.config.to_dict(), block_ids=self.block_ids, generator=INITIAL_SCORES),
            layers=[
                LayerRecord(
                    name=n, shape=tuple(m.shape), init_sparsity=self.init_sparsity[n], final_sparsity=sparsity(m)
                )
                for n, m in masks.items()
            ],
            head_tensors=sorted(head),
            sparsity=overall,
            training=TrainingRecord.from_dict({**self.args.record(), "maskctl_version": __version__}),
            metrics=MetricsRecord(
                dev=metrics, history=keeper.history, kept=keeper.record_of_kept(), curve=outcome.curve.to_dict()
            ),
            tuned=TunedRecord(
                also_train=self.args.also_train,
                tensors=list(self.pristine),
                fingerprint=tensors_fingerprint(self.pristine.items()),
            )
            if self.pristine
            else None,
        ).to_dict()


class FinetuneMethod(TrainingMethod):
    """Train every weight, the ``Trainer``'s way; write a ``save_pretrained`` folder."""

    name, folder, suffix = "finetune", "finetuned", ""

    def trainable(self, model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        return dict(model.named_parameters())

    def scheduler(self, optimizer: torch.optim.Optimizer, total: int):
        """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0."""
        from transformers import get_linear_schedule_with_warmup

        return get_linear_schedule_with_warmup(optimizer, math.ceil(self.args.warmup_ratio * total), total)

    def snapshot(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Every weight, on CPU (the kept best is a whole model)."""
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def finish(self, model: torch.nn.Module, outcome: Outcome) -> TrainResult:
        """Load the kept weights, score them, and write the folder with the run's record beside it."""
        keeper = outcome.keeper
        kept = keeper.kept_state()
        if kept is not None:
            model.load_state_dict(kept)
        metrics = outcome.score(model)
        with atomic_dir(outcome.output) as tmp:
            save_model_folder(model, outcome.tokenizer, tmp)
            record = {
                "task": outcome.task.card.to_dict(),
                "training": self.args.record(),
                "metrics": {
                    "dev": metrics,
                    "history": keeper.history,
                    "kept": keeper.record_of_kept(),
                    "curve": outcome.curve.to_dict(),
                },
                "maskctl_version": __version__,
            }
            record, _ = without_paths(record)  # no machine paths, as in bundles: the folder is shared too
            (tmp / "maskctl_training.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        return TrainResult(
            output=outcome.output,
            method=self.name,
            metrics=metrics,
            wall_seconds=0.0,
            history=keeper.history,
            kept=keeper.record_of_kept(),
        )
