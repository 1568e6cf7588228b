"""The training loop: learn a mask (default) or finetune, on CPU, one GPU or many (accelerate).

Masking (Zhao et al. 2020): every selected linear becomes a ``MaskedLinear``; only the
scores train, with Adam, no weight decay and no schedule (the official code's setting).
Finetuning follows the Hugging Face ``Trainer`` step for step: AdamW (decay never on biases or
LayerNorm), linear decay after an optional warm-up, gradient clipping at ``max_grad_norm``
before each step (tests/training/test_trainer_parity.py compares the loss curves). Both
evaluate on dev during training and keep the best evaluation (``selection.BestKeeper``).
The result is a ``*.bundle`` (masking) or a ``save_pretrained`` folder (finetuning).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from maskctl import __version__
from maskctl.bundle.codec import fingerprint
from maskctl.bundle.format import FORMAT_VERSION, Bundle, check_bundle_output, save_bundle
from maskctl.bundle.meta import (BaseModelInfo, BundleMeta, LayerRecord, MaskRecord, MetricsRecord, TaskRecord,
                                 TrainingRecord)
from maskctl.bundle.portable import without_paths
from maskctl.errors import TrainingInterrupted
from maskctl.io import atomic_dir, refuse_existing
from maskctl.masking.flip_penalty import FlipPenalty
from maskctl.masking.model import MaskConfig, current_masks, masked_layers, merge_masks, sparsity, wrap_model
from maskctl.masking.targets import num_blocks, parse_blocks
from maskctl.models import ModelSource, hub_revision, load_task_model, load_tokenizer, resolve_model, save_model_folder
from maskctl.tasks.task import Task
from maskctl.training.callbacks import TrainCallback, phase
from maskctl.training.checkpoint import Position, load_checkpoint, save_checkpoint
from maskctl.evaluation import evaluate_model, make_loader, resolve_device
from maskctl.training.selection import BestKeeper
from maskctl.training.settings import DEFAULT_LR, METHODS, TrainArgs
from maskctl.training.tracking import Reporter, accelerator_kwargs, check_tracker, start_trackers

__all__ = ["DEFAULT_LR", "METHODS", "TrainArgs", "TrainResult", "train"]

@dataclass
class TrainResult:
    output: Path
    method: str
    metrics: dict[str, float]
    wall_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    sparsity: dict[str, float] = field(default_factory=dict)
    kept: dict[str, Any] = field(default_factory=dict)  # which evaluation the output holds


def default_output(args: TrainArgs, task: Task, source: ModelSource) -> Path:
    model_name = Path(source.spec.rstrip("/")).name
    if args.method == "finetune":
        return Path("finetuned") / f"{task.name}-{model_name}"
    return Path("masks") / f"{task.name}-{model_name}.bundle"


def train(args: TrainArgs, callback: TrainCallback | None = None) -> TrainResult:
    """Train one task by masking or finetuning and write the bundle or model folder.

    Runs unchanged on CPU, one GPU, or several processes under ``accelerate launch`` /
    ``torchrun`` (DDP: each process takes ``batch_size`` examples per step; only the main
    process writes). ``resume`` continues from a checkpoint with the arguments stored there.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    callback = callback or TrainCallback()
    started = time.perf_counter()
    checkpoint = None
    if args.resume:
        checkpoint = load_checkpoint(args.resume)
        args = TrainArgs(**{**checkpoint.args, "resume": args.resume, "overwrite": args.overwrite})
    check_tracker(args.report_to)  # before any data or model is read
    task = args.load_task()
    args = args.with_task_defaults(task.card.defaults)
    source = resolve_model(args.model)
    output = Path(args.output) if args.output else default_output(args, task, source)
    if args.method == "mask":
        check_bundle_output(output)
    refuse_existing(output, args.overwrite)
    ckpt_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else output.with_name(output.name + ".ckpt")
    device = resolve_device(args.device)

    tokenizer = load_tokenizer(source, **task.kind.tokenizer_kwargs)
    train_features = _features(task, "train", tokenizer, args, callback, args.max_train_samples)
    dev_features = _features(task, "dev", tokenizer, args, callback)

    set_seed(args.seed)
    with phase(callback, "loading model"):
        model, new_keys = load_task_model(source, task.kind.auto_class, task.labels)
    if source.kind == "hub":
        source = dataclasses.replace(source, version=hub_revision(model) or source.version)
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=args.precision,
                              gradient_accumulation_steps=args.grad_accum,
                              **accelerator_kwargs(args.report_to, output))

    mask_info: dict[str, Any] = {}
    if args.method == "mask":
        config = MaskConfig(threshold=args.threshold, init_sparsity=args.init_sparsity,
                            blocks=args.mask_blocks, head=args.head, seed=args.seed)
        block_ids = parse_blocks(args.mask_blocks, num_blocks(model))
        names = wrap_model(model, config)
        fp_layers = [n for n in names if f"{n}.weight" not in new_keys]
        init_sparsity = {n: sparsity(m) for n, m in current_masks(model).items()}
        mask_info = dict(config=config, block_ids=block_ids, fp_layers=fp_layers,
                         fingerprint=fingerprint(model, fp_layers), init_sparsity=init_sparsity)
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    else:
        trainable = dict(model.named_parameters())
    optimizer = _optimizer(model, trainable, args)

    loader = make_loader(train_features, task.kind.collate(tokenizer), args.batch_size,
                         shuffle=True, seed=args.seed)
    generator = loader.generator
    batches = math.ceil(len(loader) / accelerator.num_processes)  # per process and epoch
    steps_per_epoch = math.ceil(batches / args.grad_accum)
    total = steps_per_epoch * args.epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    epochs = math.ceil(total / steps_per_epoch) if steps_per_epoch else 0
    scheduler = None
    if args.method == "finetune":
        from transformers import get_linear_schedule_with_warmup

        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(args.warmup_ratio * total), total)
    report = Reporter(accelerator, callback, args.log_every, total, steps_per_epoch)
    position = Position(epoch=0, step=0, in_epoch=0)
    epoch_state = generator.get_state()
    keeper = BestKeeper(args.keep, args.early_stopping, lambda: _snapshot(accelerator.unwrap_model(model),
                                                                          args.method, new_keys))
    if checkpoint is not None:
        epoch_state = checkpoint.restore(trainable, optimizer, scheduler)
        position = checkpoint.position
        keeper.restore(checkpoint.history, checkpoint.meta.get("selection"), checkpoint.tensors)
        report.curve.restore(checkpoint.meta.get("curve"))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    pull = FlipPenalty.of(accelerator.unwrap_model(model), args.flip_penalty) if (
        args.method == "mask" and args.flip_penalty) else None  # on the device the scores now live on
    global_batch = args.batch_size * accelerator.num_processes * args.grad_accum
    callback.on_start(dict(task=task.name, model=source.spec, method=args.method, device=str(accelerator.device),
                           train_examples=len(train_features), dev_examples=len(dev_features),
                           epochs=epochs, total_steps=total, lr=args.lr, global_batch=global_batch,
                           processes=accelerator.num_processes, resumed_at=position.step if checkpoint else None,
                           trainable=sum(p.numel() for p in trainable.values())))
    start_trackers(accelerator, args.report_to, args.record(), output)

    def save(pos: Position) -> None:
        if accelerator.is_main_process:
            save_checkpoint(ckpt_dir, dataclasses.asdict(args), pos, keeper.history, trainable,
                            optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer,
                            scheduler, epoch_state, keeper.checkpoint_tensors(), keeper.checkpoint_meta(),
                            report.curve.state())
        accelerator.wait_for_everyone()

    def evaluate() -> None:
        with phase(callback, "evaluating dev", _batches(dev_features, args), "batches") as advance:
            metrics = evaluate_model(model, task, dev_features, tokenizer, args.eval_batch_size, accelerator.device,
                                     progress=advance)
        epoch = round(position.step / steps_per_epoch, 2)
        best = keeper.record(position.step, int(epoch) if float(epoch).is_integer() else epoch, metrics)
        zeros = _mask_sparsity(accelerator.unwrap_model(model)) if args.method == "mask" else None
        report.evaluate(position.step, epoch, metrics, best, zeros)

    try:
        for epoch in range(position.epoch, epochs):
            model.train()
            if epoch != position.epoch or checkpoint is None:
                epoch_state = generator.get_state()
                position = Position(epoch=epoch, step=position.step, in_epoch=0)
            else:
                generator.set_state(epoch_state)
            epoch_loader = accelerator.skip_first_batches(loader, position.in_epoch) if position.in_epoch else loader
            step_loss, micro, seen, spent = None, 0, 0, 0.0  # over the micro-batches of one optimizer step
            for batch in epoch_loader:
                if position.step >= total or keeper.should_stop:
                    break
                tick = time.perf_counter()
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and args.max_grad_norm:
                        accelerator.clip_grad_norm_(list(trainable.values()), args.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    if pull is not None and accelerator.sync_gradients:
                        pull.step(optimizer.param_groups[0]["lr"])
                step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
                micro, seen = micro + 1, seen + batch["labels"].shape[0] * accelerator.num_processes
                spent += time.perf_counter() - tick
                position.in_epoch += 1
                if not accelerator.sync_gradients:
                    continue
                if scheduler is not None:
                    scheduler.step()
                position.step += 1
                step_loss = step_loss / micro
                if accelerator.num_processes > 1:  # the curve is the loss of the global batch
                    step_loss = accelerator.reduce(step_loss, "mean")
                report.step(position.step, float(step_loss), seen, spent, optimizer.param_groups[0]["lr"])
                step_loss, micro, seen, spent = None, 0, 0, 0.0
                if args.eval_every and (position.step % args.eval_every == 0 or position.step == total):
                    evaluate()
                if args.checkpoint_every and position.step % args.checkpoint_every == 0 and position.step < total:
                    save(position)
            if keeper.should_stop:
                break
            if not args.eval_every:
                evaluate()
    except KeyboardInterrupt:
        save(position)
        accelerator.end_training()  # the trackers keep what was logged
        raise TrainingInterrupted(position.step, total, ckpt_dir) from None
    if not keeper.history:  # e.g. --eval-every larger than the run: the final state is evaluated
        evaluate()

    model = accelerator.unwrap_model(model)
    result = None
    if accelerator.is_main_process:
        finish = _finish_mask if args.method == "mask" else _finish_finetune
        result = finish(model, args, task, source, new_keys, mask_info, tokenizer, dev_features,
                        accelerator.device, output, keeper, report)
        if args.checkpoint_every or checkpoint is not None:
            shutil.rmtree(ckpt_dir, ignore_errors=True)  # the run finished: its checkpoint is spent
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1 or accelerator.trackers:
        accelerator.end_training()  # closes the trackers, tears the process group down cleanly
    if result is None:  # other processes: report the main process's output path
        result = TrainResult(output=output, method=args.method, metrics={}, wall_seconds=0.0)
    result.wall_seconds = time.perf_counter() - started
    return result


def _features(task: Task, split: str, tokenizer, args: TrainArgs, callback: TrainCallback, limit: int | None = None):
    """Read and tokenise one split, as two phases the callback shows."""
    return task.features(split, tokenizer, args.max_length, args.data_dir, limit, args.kind_options,
                         stage=functools.partial(phase, callback))


def _batches(features, args: TrainArgs) -> int:
    return math.ceil(len(features) / args.eval_batch_size)


def _mask_sparsity(model: torch.nn.Module) -> float:
    """Share of zeros over every mask, as the bundle's ``sparsity.final`` counts it."""
    masks = current_masks(model).values()
    return sum(m.numel() - int(m.sum()) for m in masks) / max(sum(m.numel() for m in masks), 1)


def _final_metrics(model, args: TrainArgs, task: Task, tokenizer, dev_features, device, report: Reporter):
    with phase(report.callback, "evaluating dev (kept state)", _batches(dev_features, args), "batches") as advance:
        return evaluate_model(model, task, dev_features, tokenizer, args.eval_batch_size, device, progress=advance)


def _optimizer(model: torch.nn.Module, trainable: dict[str, torch.nn.Parameter], args: TrainArgs):
    """Adam on the mask scores (the paper's), AdamW when finetuning; as the ``Trainer`` does,
    weight decay never applies to biases or LayerNorm weights."""
    if not args.weight_decay:
        cls = torch.optim.Adam if args.method == "mask" else torch.optim.AdamW
        return cls(trainable.values(), lr=args.lr, weight_decay=0.0)
    norms = {f"{name}.{p}" if name else p for name, module in model.named_modules()
             if isinstance(module, torch.nn.LayerNorm) for p, _ in module.named_parameters(recurse=False)}
    no_decay = [p for n, p in trainable.items() if n.endswith("bias") or n in norms]
    decay = [p for n, p in trainable.items() if not (n.endswith("bias") or n in norms)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)


def _snapshot(model: torch.nn.Module, method: str, new_keys: list[str]) -> dict[str, torch.Tensor]:
    """The state ``--keep best`` saves at a new best: masks and head tensors, or every weight."""
    if method == "mask":
        return {**{f"mask/{n}": m.clone() for n, m in current_masks(model).items()},
                **{f"head/{k}": v for k, v in _head_tensors(model, new_keys).items()}}
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _head_tensors(model: torch.nn.Module, new_keys: list[str]) -> dict[str, torch.Tensor]:
    """Current values of the parameters the checkpoint lacked, read through any wrapper."""
    wrapped = masked_layers(model)
    tensors = {}
    for key in new_keys:
        module_name, _, param = key.rpartition(".")
        module = wrapped[module_name].base_layer if module_name in wrapped else model.get_submodule(module_name)
        tensors[key] = getattr(module, param).detach().float().cpu().clone()
    return tensors


INITIAL_SCORES = ("numpy PCG64 seeded with sha256(f'{seed}:{layer}')[:8] little-endian; "
                  "scores ~ U(-0.02, (0.02+threshold)/init_sparsity - 0.02) as float32")


def _finish_mask(model, args: TrainArgs, task: Task, source: ModelSource, new_keys: list[str],
                 info: dict[str, Any], tokenizer, dev_features, device, output: Path,
                 keeper: BestKeeper, report: Reporter) -> TrainResult:
    kept = keeper.kept_state()
    if kept is None:
        masks, head = current_masks(model), _head_tensors(model, new_keys)
    else:
        # in the model's layer order, whatever order a checkpoint gave back: the bytes must not vary
        masks = {n: kept[f"mask/{n}"] for n in masked_layers(model)}
        head = {k: kept[f"head/{k}"] for k in new_keys}
    merge_masks(model, masks if kept is not None else None)  # the very model `maskctl eval` rebuilds
    if kept is not None:
        model.load_state_dict(head, strict=False)
    metrics = _final_metrics(model, args, task, tokenizer, dev_features, device, report)
    total = sum(m.numel() for m in masks.values())
    final = {n: sparsity(m) for n, m in masks.items()}
    overall = {
        "init": sum(info["init_sparsity"][n] * masks[n].numel() for n in masks) / total,
        "final": sum(final[n] * masks[n].numel() for n in masks) / total,
    }
    config: MaskConfig = info["config"]
    meta = BundleMeta(
        format_version=FORMAT_VERSION,
        base_model=BaseModelInfo(source=source.to_dict(), model_type=model.config.model_type,
                                 fingerprint=info["fingerprint"], fingerprint_layers=info["fp_layers"],
                                 num_blocks=num_blocks(model)),
        task=TaskRecord(task.card.to_dict()),
        mask=MaskRecord(**config.to_dict(), block_ids=info["block_ids"], generator=INITIAL_SCORES),
        layers=[LayerRecord(name=n, shape=tuple(m.shape), init_sparsity=info["init_sparsity"][n],
                            final_sparsity=final[n]) for n, m in masks.items()],
        head_tensors=sorted(head),
        sparsity=overall,
        training=TrainingRecord.from_dict({**args.record(), "maskctl_version": __version__}),
        metrics=MetricsRecord(dev=metrics, history=keeper.history, kept=keeper.record_of_kept(),
                              curve=report.curve.to_dict()),
    ).to_dict()
    path = save_bundle(Bundle(masks=masks, head=head, meta=meta), output)
    return TrainResult(output=path, method="mask", metrics=metrics, wall_seconds=0.0,
                       history=keeper.history, sparsity=overall, kept=keeper.record_of_kept())


def _finish_finetune(model, args: TrainArgs, task: Task, source: ModelSource, new_keys: list[str],
                     info: dict[str, Any], tokenizer, dev_features, device, output: Path,
                     keeper: BestKeeper, report: Reporter) -> TrainResult:
    import json

    kept = keeper.kept_state()
    if kept is not None:
        model.load_state_dict(kept)
    metrics = _final_metrics(model, args, task, tokenizer, dev_features, device, report)
    with atomic_dir(output) as tmp:
        save_model_folder(model, tokenizer, tmp)
        record = {"task": task.card.to_dict(), "training": args.record(),
                  "metrics": {"dev": metrics, "history": keeper.history, "kept": keeper.record_of_kept(),
                              "curve": report.curve.to_dict()},
                  "maskctl_version": __version__}
        record, _ = without_paths(record)  # no machine paths, as in bundles: the folder is shared too
        (tmp / "maskctl_training.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return TrainResult(output=output, method="finetune", metrics=metrics, wall_seconds=0.0,
                       history=keeper.history, kept=keeper.record_of_kept())
