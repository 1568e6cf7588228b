"""The training loop: learn a mask (default) or finetune, on CPU, one GPU or many (accelerate).

Laid out as torchtune's recipes are: ``train`` settles the settings, then runs four phases of a
``Run`` (setup; the epoch loop; evaluation and keeping the best, at every ``--eval-every``
step or epoch; finish). Everything that differs between masking and finetuning (which tensors
train, the optimizer and schedule, what a kept best state holds, what is written) belongs to
the run's method object (``methods.py``), so the loop itself has no ``if method == ...``.

Both methods clip the gradient at ``max_grad_norm`` before each step (finetuning follows the
Hugging Face ``Trainer`` step for step: tests/training/test_trainer_parity.py compares the loss
curves), evaluate on dev during training and keep the best evaluation (``selection.BestKeeper``).
Checkpoints hold the whole position, so a resumed run writes the same bytes as a straight one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from maskctl.deprecation import moved_names
from maskctl.devices import resolve_device
from maskctl.errors import TrainingInterrupted
from maskctl.evaluation import evaluate_model, make_loader
from maskctl.io import refuse_existing
from maskctl.models import ModelSource, hub_revision, load_task_model, load_tokenizer, resolve_model
from maskctl.tasks.task import Task
from maskctl.train_settings import METHODS
from maskctl.training.callbacks import TrainCallback, phase
from maskctl.training.checkpoint import Checkpoint, Position, load_checkpoint, refuse_unresumed, save_checkpoint
from maskctl.training.methods import Outcome, TrainingMethod, TrainResult
from maskctl.training.selection import BestKeeper
from maskctl.training.tracking import Reporter, accelerator_kwargs, check_tracker, start_trackers

if TYPE_CHECKING:  # annotations only: TrainArgs' one home is maskctl.train_settings
    from maskctl.train_settings import TrainArgs

__all__ = ["TrainResult", "method_for", "train"]
__getattr__ = moved_names(__name__, dict.fromkeys(("DEFAULT_LR", "TrainArgs"), "maskctl.train_settings"))


def method_for(args: TrainArgs) -> TrainingMethod:
    """The method object for ``args.method`` (settled args: card defaults already filled in);
    the classes are registered in ``maskctl.train_settings.METHODS``."""
    return METHODS.get(args.method)(args)


def default_output(args: TrainArgs, task: Task, source: ModelSource) -> Path:
    return METHODS.get(args.method).default_output(task.name, Path(source.spec.rstrip("/")).name)


def train(args: TrainArgs, callback: TrainCallback | None = None) -> TrainResult:
    """Train one task by masking or finetuning and write the bundle or model folder.

    Runs unchanged on CPU, one GPU, or several processes under ``accelerate launch`` /
    ``torchrun`` (DDP: each process takes ``batch_size`` examples per step; only the main
    process writes). ``resume`` continues from a checkpoint with the arguments stored there.
    """
    started = time.perf_counter()
    run = Run(args, callback or TrainCallback())
    run.setup()
    run.loop()
    result = run.finish()
    result.wall_seconds = time.perf_counter() - started
    return result


@dataclasses.dataclass
class _Tally:
    """The micro-batches of one optimizer step: summed loss, count, examples, seconds."""

    loss: torch.Tensor | None = None
    micro: int = 0
    seen: int = 0
    spent: float = 0.0

    def add(self, loss: torch.Tensor, examples: int, seconds: float) -> None:
        self.loss = loss if self.loss is None else self.loss + loss
        self.micro, self.seen, self.spent = self.micro + 1, self.seen + examples, self.spent + seconds


class Run:
    """One training run's state, built by ``setup`` and advanced by ``loop``. The order of the
    setup steps is part of the result: the seed, the classifier's initialisation, the mask's
    wrapping and the data order must happen as they always did for outputs to stay identical."""

    def __init__(self, args: TrainArgs, callback: TrainCallback) -> None:
        self.callback = callback
        self.checkpoint: Checkpoint | None = None
        if args.resume:
            self.checkpoint = load_checkpoint(args.resume)
            args = type(args)(**{**self.checkpoint.args, "resume": args.resume, "overwrite": args.overwrite})
        check_tracker(args.report_to)  # before any data or model is read
        self.task = args.load_task()
        self.args = args = args.with_task_defaults(self.task.card.defaults)
        self.method = method_for(args)
        self.source = resolve_model(args.model)
        self.output = Path(args.output) if args.output else default_output(args, self.task, self.source)
        self.method.check_output(self.output)
        refuse_existing(self.output, args.overwrite)
        self.ckpt_dir = (
            Path(args.checkpoint_dir) if args.checkpoint_dir else self.output.with_name(self.output.name + ".ckpt")
        )
        self.replaces_checkpoint = not args.resume and refuse_unresumed(self.ckpt_dir, args.overwrite)

    # -- phase 1: setup -------------------------------------------------------------------------

    def setup(self) -> None:
        """Data, model, optimizer, schedule, the state a checkpoint restores, and the trackers."""
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        args, task, method = self.args, self.task, self.method
        device = resolve_device(args.device)
        self.tokenizer = load_tokenizer(self.source, **task.kind.tokenizer_kwargs)
        self.train_features = self._features("train", args.max_train_samples)
        self.dev_features = self._features("dev")
        set_seed(args.seed)
        with phase(self.callback, "loading model"):
            model, new_keys = load_task_model(self.source, task.kind.auto_class, task.labels)
        if self.source.kind == "hub":
            self.source = dataclasses.replace(self.source, version=hub_revision(model) or self.source.version)
        self.accelerator = Accelerator(
            cpu=device.type == "cpu",
            mixed_precision=args.precision,
            gradient_accumulation_steps=args.grad_accum,
            **accelerator_kwargs(args.report_to, self.output),
        )
        method.attach(model, new_keys)
        self.trainable = method.trainable(model)
        optimizer = method.optimizer(model, self.trainable)
        loader = make_loader(
            self.train_features, task.kind.collate(self.tokenizer), args.batch_size, shuffle=True, seed=args.seed
        )
        self._plan(loader)
        self.scheduler = method.scheduler(optimizer, self.total)
        self.report = Reporter(self.accelerator, self.callback, args.log_every, self.total, self.steps_per_epoch)
        self.keeper = BestKeeper(
            args.keep, args.early_stopping, lambda: method.snapshot(self.accelerator.unwrap_model(self.model))
        )
        self._restore(optimizer)
        self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        method.on_device(self.accelerator.unwrap_model(self.model))
        self._announce()

    def _features(self, split: str, limit: int | None = None):
        """Read and tokenise one split, as two phases the callback shows."""
        args = self.args
        return self.task.features(
            split,
            self.tokenizer,
            args.max_length,
            args.data_dir,
            limit,
            args.kind_options,
            stage=functools.partial(phase, self.callback),
        )

    def _plan(self, loader) -> None:
        """Steps per epoch and in total, per process (``--max-steps`` may cut the last epoch)."""
        self.generator = loader.generator
        batches = math.ceil(len(loader) / self.accelerator.num_processes)  # per process and epoch
        self.steps_per_epoch = math.ceil(batches / self.args.grad_accum)
        total = self.steps_per_epoch * self.args.epochs
        self.total = min(total, self.args.max_steps) if self.args.max_steps is not None else total
        self.epochs = math.ceil(self.total / self.steps_per_epoch) if self.steps_per_epoch else 0

    def _restore(self, optimizer) -> None:
        """Start at the beginning, or where the checkpoint left off (weights, optimizer, RNGs,
        data position, dev history, kept best, loss curve)."""
        self.position = Position(epoch=0, step=0, in_epoch=0)
        self.epoch_state = self.generator.get_state()
        ckpt = self.checkpoint
        if ckpt is not None:
            self.epoch_state = ckpt.restore(self.trainable, optimizer, self.scheduler)
            self.position = ckpt.position
            self.keeper.restore(ckpt.history, ckpt.meta.get("selection"), ckpt.tensors)
            self.method.restore_state(ckpt.tensors)
            self.report.curve.restore(ckpt.meta.get("curve"))

    def _announce(self) -> None:
        args, acc = self.args, self.accelerator
        self.callback.on_start(
            dict(
                task=self.task.name,
                model=self.source.spec,
                method=args.method,
                device=str(acc.device),
                train_examples=len(self.train_features),
                dev_examples=len(self.dev_features),
                epochs=self.epochs,
                total_steps=self.total,
                lr=args.lr,
                global_batch=args.batch_size * acc.num_processes * args.grad_accum,
                processes=acc.num_processes,
                resumed_at=self.position.step if self.checkpoint else None,
                log_every=args.log_every,
                trainable=sum(p.numel() for p in self.trainable.values()),
            )
        )
        start_trackers(acc, args.report_to, args.record(), self.output)

    # -- phase 2: the epoch loop ----------------------------------------------------------------

    def loop(self) -> None:
        """Every epoch up to the planned steps or early stopping; Ctrl-C writes a checkpoint."""
        try:
            for epoch in range(self.position.epoch, self.epochs):
                self._epoch(epoch)
                if self.keeper.should_stop:
                    break
                if not self.args.eval_every:
                    self.evaluate()
        except KeyboardInterrupt:
            self.save_checkpoint()
            self.accelerator.end_training()  # the trackers keep what was logged
            raise TrainingInterrupted(self.position.step, self.total, self.ckpt_dir) from None
        if not self.keeper.history:  # e.g. --eval-every larger than the run: the final state is evaluated
            self.evaluate()

    def _epoch(self, epoch: int) -> None:
        """One pass over the data; a resumed epoch replays its data order and skips what was done."""
        self.model.train()
        if epoch != self.position.epoch or self.checkpoint is None:
            self.epoch_state = self.generator.get_state()
            self.position = Position(epoch=epoch, step=self.position.step, in_epoch=0)
        else:
            self.generator.set_state(self.epoch_state)
        done = self.position.in_epoch
        loader = self.accelerator.skip_first_batches(self.loader, done) if done else self.loader
        tally = _Tally()
        for batch in loader:
            if self.position.step >= self.total or self.keeper.should_stop:
                break
            tick = time.perf_counter()
            loss = self._micro_step(batch)
            tally.add(loss, batch["labels"].shape[0] * self.accelerator.num_processes, time.perf_counter() - tick)
            self.position.in_epoch += 1
            if self.accelerator.sync_gradients:
                self._after_step(tally)
                tally = _Tally()

    def _micro_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Forward and backward on one batch; the optimizer steps once ``grad_accum`` are in."""
        acc = self.accelerator
        with acc.accumulate(self.model):
            loss = self.model(**batch).loss
            acc.backward(loss)
            if acc.sync_gradients and self.args.max_grad_norm:
                acc.clip_grad_norm_(list(self.trainable.values()), self.args.max_grad_norm)
            if acc.sync_gradients:
                self.method.before_step()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if acc.sync_gradients:
                self.method.after_step(self.optimizer.param_groups[0]["lr"])
        return loss.detach()

    def _after_step(self, tally: _Tally) -> None:
        """Schedule, report the step's loss, evaluate and checkpoint when due."""
        if self.scheduler is not None:
            self.scheduler.step()
        self.position.step += 1
        step, args = self.position.step, self.args
        assert tally.loss is not None  # a step follows at least one micro-batch
        loss = tally.loss / tally.micro
        if self.accelerator.num_processes > 1:  # the curve is the loss of the global batch
            loss = self.accelerator.reduce(loss, "mean")
        self.report.step(step, float(loss), tally.seen, tally.spent, self.optimizer.param_groups[0]["lr"])
        if args.eval_every and (step % args.eval_every == 0 or step == self.total):
            self.evaluate()
        if args.checkpoint_every and step % args.checkpoint_every == 0 and step < self.total:
            self.save_checkpoint()

    def save_checkpoint(self) -> None:
        if self.accelerator.is_main_process:
            optimizer = self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer
            save_checkpoint(
                self.ckpt_dir,
                dataclasses.asdict(self.args),
                self.position,
                self.keeper.history,
                self.trainable,
                optimizer,
                self.scheduler,
                self.epoch_state,
                {**self.keeper.checkpoint_tensors(), **self.method.checkpoint_state()},
                self.keeper.checkpoint_meta(),
                self.report.curve.state(),
            )
        self.accelerator.wait_for_everyone()

    # -- phase 3: evaluate and keep the best ----------------------------------------------------

    def evaluate(self) -> None:
        """Score dev now; the keeper copies the state when it is the best so far."""
        with phase(self.callback, "evaluating dev", self._eval_batches(), "batches") as advance:
            metrics = evaluate_model(
                self.model,
                self.task,
                self.dev_features,
                self.tokenizer,
                self.args.eval_batch_size,
                self.accelerator.device,
                progress=advance,
            )
        step = self.position.step
        epoch = round(step / self.steps_per_epoch, 2)
        best = self.keeper.record(step, int(epoch) if float(epoch).is_integer() else epoch, metrics)
        zeros = self.method.sparsity(self.accelerator.unwrap_model(self.model))
        self.report.evaluate(step, epoch, metrics, best, zeros)

    def _eval_batches(self) -> int:
        return math.ceil(len(self.dev_features) / self.args.eval_batch_size)

    def _final_metrics(self, model: torch.nn.Module) -> dict[str, Any]:
        """Dev metrics of the state the output holds (what ``maskctl eval`` will reproduce)."""
        with phase(self.callback, "evaluating dev (kept state)", self._eval_batches(), "batches") as advance:
            return evaluate_model(
                model,
                self.task,
                self.dev_features,
                self.tokenizer,
                self.args.eval_batch_size,
                self.accelerator.device,
                progress=advance,
            )

    # -- phase 4: finish ------------------------------------------------------------------------

    def finish(self) -> TrainResult:
        """The main process writes the output (the method's); every process then ends cleanly."""
        acc = self.accelerator
        result = None
        if acc.is_main_process:
            outcome = Outcome(
                task=self.task,
                source=self.source,
                tokenizer=self.tokenizer,
                output=self.output,
                keeper=self.keeper,
                curve=self.report.curve,
                score=self._final_metrics,
            )
            result = self.method.finish(acc.unwrap_model(self.model), outcome)
            if self.args.checkpoint_every or self.checkpoint is not None or self.replaces_checkpoint:
                shutil.rmtree(self.ckpt_dir, ignore_errors=True)  # the run finished: its checkpoint is spent
        acc.wait_for_everyone()
        if acc.num_processes > 1 or acc.trackers:
            acc.end_training()  # closes the trackers, tears the process group down cleanly
        if result is None:  # other processes: report the main process's output path
            result = TrainResult(output=self.output, method=self.args.method, metrics={}, wall_seconds=0.0)
        return result
