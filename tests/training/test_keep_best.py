"""``--keep best`` (the default), ``--eval-every`` and ``--early-stopping``: the output holds the
best dev evaluation, the bundle records the whole history and which step it kept, and an
interrupted run resumed from its checkpoint still writes the same bytes."""

from __future__ import annotations

import math

import pytest
import torch

from maskctl.bundle.format import load_bundle
from maskctl.errors import MaskctlError, TrainingInterrupted
from maskctl.experiments.evaluate import evaluate_bundle
from maskctl.train_settings import TrainArgs
from maskctl.training import trainer as trainer_module
from maskctl.training.callbacks import TrainCallback
from maskctl.training.selection import BestKeeper
from maskctl.training.trainer import train


def _args(model, task, out, **kw) -> TrainArgs:
    base = dict(model=str(model), task=str(task), output=str(out), batch_size=16, lr=3e-2, seed=5)
    return TrainArgs(**{**base, **kw})


def test_keeper_keeps_the_first_best_and_counts_patience():
    snaps = iter(range(100))
    keeper = BestKeeper("best", patience=2, snapshot=lambda: {"s": torch.tensor(next(snaps))})
    assert keeper.record(1, 1, {"score": 0.5}) and keeper.record(2, 2, {"score": 0.7})
    assert not keeper.record(3, 3, {"score": 0.7})  # a tie keeps the earlier state
    assert not keeper.should_stop
    assert not keeper.record(4, 4, {"score": math.nan})  # NaN never wins
    assert keeper.should_stop and keeper.kept_index == 1
    assert int(keeper.kept_state()["s"]) == 1 and keeper.record_of_kept()["step"] == 2
    last = BestKeeper("last", None, snapshot=lambda: pytest.fail("keep=last copies no state"))
    last.record(1, 1, {"score": 0.9}), last.record(2, 2, {"score": 0.1})
    assert last.kept_state() is None and last.record_of_kept()["step"] == 2


def test_settings_refuse_bad_keep_values():
    with pytest.raises(MaskctlError, match="--keep"):
        TrainArgs(keep="first")
    with pytest.raises(MaskctlError, match="--early-stopping needs --keep best"):
        TrainArgs(keep="last", early_stopping=2)
    with pytest.raises(MaskctlError, match="did you mean 'epochs'"):
        TrainArgs().with_task_defaults({"epoch": 3})


@pytest.fixture
def scripted_dev(monkeypatch):
    """Dev scores during training follow a script; the final evaluation of the kept model is real."""
    real = trainer_module.evaluate_model
    script: list[float] = []

    def fake(model, task, features, tokenizer, batch_size, device, progress=None):
        if script:
            return {"accuracy": script[0], "score": script.pop(0), "n": len(features)}
        return real(model, task, features, tokenizer, batch_size, device, progress)

    monkeypatch.setattr(trainer_module, "evaluate_model", fake)
    return script


@pytest.mark.slow
def test_the_bundle_holds_the_best_evaluation(scripted_dev, tiny_bert, keyword_task, tmp_path):
    reference = train(_args(tiny_bert, keyword_task, tmp_path / "two.bundle", max_steps=2, keep="last"))
    scripted_dev += [0.1, 0.9, 0.2, 0.3]
    kept = train(_args(tiny_bert, keyword_task, tmp_path / "best.bundle", max_steps=4, eval_every=1))
    assert [h["step"] for h in kept.history] == [1, 2, 3, 4]
    assert kept.kept == {**kept.kept, "rule": "best", "step": 2, "index": 1, "evaluations": 4}
    assert kept.metrics == reference.metrics  # the real score of the state after step 2
    a, b = load_bundle(reference.output), load_bundle(kept.output)
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    assert b.meta["metrics"]["kept"]["step"] == 2 and len(b.meta["metrics"]["history"]) == 4
    assert evaluate_bundle(kept.output).metrics == kept.metrics


@pytest.mark.slow
def test_the_finetuned_folder_holds_the_best_evaluation(scripted_dev, tiny_bert, keyword_task, tmp_path):
    import transformers
    from safetensors.torch import load_file

    settings = dict(method="finetune", max_steps=4, eval_every=1)
    with pytest.raises(TrainingInterrupted) as stopped:  # the weights after step 2 of the same run
        train(_args(tiny_bert, keyword_task, tmp_path / "ref", **settings), callback=StopAt(2))
    after_two = {
        k.removeprefix("param/"): v
        for k, v in load_file(str(stopped.value.checkpoint / "state.safetensors")).items()
        if k.startswith("param/")
    }
    scripted_dev += [0.1, 0.9, 0.2, 0.3]
    kept = train(_args(tiny_bert, keyword_task, tmp_path / "best", **settings))
    assert kept.kept["step"] == 2
    state = transformers.AutoModelForSequenceClassification.from_pretrained(kept.output).state_dict()
    assert after_two and all(torch.equal(state[k], v) for k, v in after_two.items() if k in state)


@pytest.mark.slow
def test_early_stopping_ends_the_run_after_patience(scripted_dev, tiny_bert, keyword_task, tmp_path):
    scripted_dev += [0.5, 0.6, 0.4, 0.3, 0.9, 0.9]
    result = train(_args(tiny_bert, keyword_task, tmp_path / "es.bundle", max_steps=6, eval_every=1, early_stopping=2))
    assert [h["step"] for h in result.history] == [1, 2, 3, 4]
    assert result.kept["step"] == 2 and result.kept["stopped_early"]


class StopAt(TrainCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step, total, loss, examples_per_s) -> None:
        if step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resume_with_a_kept_best_state_writes_the_same_bytes(tiny_bert, keyword_task, tmp_path):
    settings = dict(max_steps=24, eval_every=3, init_sparsity=0.3)
    straight = train(_args(tiny_bert, keyword_task, tmp_path / "straight.bundle", **settings))
    assert straight.kept["index"] < straight.kept["evaluations"] - 1, "the best must not be the last evaluation"
    out = tmp_path / "resumed.bundle"
    with pytest.raises(TrainingInterrupted) as stopped:
        train(_args(tiny_bert, keyword_task, out, **settings), callback=StopAt(straight.kept["step"] + 4))
    assert any(k.startswith("best/") for k in _checkpoint_keys(stopped.value.checkpoint))
    train(TrainArgs(resume=str(stopped.value.checkpoint)))
    assert out.read_bytes() == straight.output.read_bytes()


def _checkpoint_keys(folder) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "state.safetensors"), framework="pt") as handle:
        return list(handle.keys())
