"""--max-flips: the budget holds exactly (after every step and at every evaluation), the kept
crossings are those with the largest margin, budget 0 is the initial mask, a resumed run ends
with the same mask, and a run without a budget is the run it was before budgets existed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from maskctl.bundle.format import load_bundle, read_meta
from maskctl.errors import MaskctlError
from maskctl.masking.flip_budget import FlipBudget
from maskctl.masking.layer import MaskedLinear, initial_scores
from maskctl.masking.model import layer_seed
from maskctl.train_settings import share
from maskctl.training import methods
from maskctl.training.trainer import TrainArgs, train


def _crossed_layers() -> tuple[dict[str, MaskedLinear], dict[str, torch.Tensor]]:
    """Two layers with 40 + 30 crossings at distinct margins, 1e-4 .. 7e-3 from the threshold."""
    layers, initial = {}, {}
    margins = iter(torch.randperm(70, generator=torch.Generator().manual_seed(0)).add(1).mul(1e-4).tolist())
    for name, (rows, cols) in {"a": (32, 48), "b": (24, 16)}.items():
        layer = MaskedLinear(nn.Linear(rows, cols), init_sparsity=0.3, seed=len(name) + rows)
        layers[name], initial[name] = layer, layer.binary_mask().clone()
        with torch.no_grad():
            for i, j in initial[name].nonzero()[:20].tolist():  # kept bits pushed off
                layer.scores[i, j] = layer.threshold - next(margins)
            for i, j in (~initial[name]).nonzero()[:15].tolist():  # removed bits pushed on
                layer.scores[i, j] = layer.threshold + next(margins)
    return layers, initial


def _flipped(layers, initial) -> int:
    return sum(int((layers[n].binary_mask() != initial[n]).sum()) for n in layers)


def test_the_largest_margins_stay_and_the_rest_go_back_onto_the_threshold():
    layers, initial = _crossed_layers()
    before = {n: layer.scores.detach().clone() for n, layer in layers.items()}
    weights = sum(layer.scores.numel() for layer in layers.values())
    budget = FlipBudget(layers, 25 / weights)
    assert budget.budget == 25 and budget.flips() == 70
    assert budget.project() == 45 and budget.flips() == 25
    margins = torch.cat([(before[n] - layers[n].threshold).abs()[before[n].gt(layers[n].threshold) != initial[n]]
                         for n in layers])
    cut = margins.sort(descending=True).values[24]
    for name, layer in layers.items():
        crossed = (before[name] > layer.threshold) != initial[name]
        kept = crossed & (layer.binary_mask() != initial[name])
        reverted = crossed & ~kept
        assert ((before[name] - layer.threshold).abs()[kept] >= cut).all()
        assert ((before[name] - layer.threshold).abs()[reverted] < cut).all()
        # reverted scores sit on the threshold, on their initial side; nothing else moved
        assert torch.equal(layer.scores.detach()[reverted & ~initial[name]],
                           torch.full_like(layer.scores[reverted & ~initial[name]], layer.threshold))
        on = layer.scores.detach()[reverted & initial[name]]
        assert (on > layer.threshold).all() and (on - layer.threshold < 1e-8).all()
        assert torch.equal(layer.scores.detach()[~reverted], before[name][~reverted])
    assert budget.project() == 0  # in budget: a second projection changes nothing


def test_ties_at_the_cut_keep_the_first_by_position():
    layer = MaskedLinear(nn.Linear(8, 8), init_sparsity=0.5, seed=1)
    initial = layer.binary_mask().clone()
    off = (~initial).nonzero()[:6]
    with torch.no_grad():
        layer.scores[off[:, 0], off[:, 1]] = layer.threshold + 0.003  # six crossings, one margin
    FlipBudget({"l": layer}, 4 / 64).project()
    assert (layer.binary_mask() != initial).nonzero().tolist() == off[:4].tolist()


def test_a_budget_of_zero_gives_back_the_initial_mask():
    layers, initial = _crossed_layers()
    FlipBudget(layers, 0.0).project()
    assert _flipped(layers, initial) == 0


@pytest.mark.parametrize("given, fraction", [("1.5%", 0.015), ("0.015", 0.015), (0.02, 0.02), ("0%", 0.0)])
def test_the_budget_is_a_share_or_a_percentage(given, fraction):
    assert math.isclose(TrainArgs(max_flips=given).max_flips, fraction)
    assert share(None) is None


@pytest.mark.parametrize("given, message", [("lots", "is not a share"), ("150%", "out of range"),
                                            (-0.1, "out of range")])
def test_a_bad_budget_is_refused_with_a_fix(given, message):
    with pytest.raises(MaskctlError, match=message):
        TrainArgs(max_flips=given)


def test_the_budget_is_refused_when_finetuning():
    with pytest.raises(MaskctlError, match="--max-flips applies to masking"):
        TrainArgs(method="finetune", max_flips=0.01)


def _bundle_flips(path) -> tuple[int, int]:
    """Bits of the bundle's masks that differ from the seed's initial masks, and all bits."""
    bundle = load_bundle(path)
    mask = bundle.meta["mask"]
    flipped = total = 0
    for name, bits in bundle.masks.items():
        start = initial_scores(tuple(bits.shape), mask["init_sparsity"], mask["threshold"],
                               layer_seed(mask["seed"], name)) > mask["threshold"]
        flipped += int((bits != start).sum())
        total += bits.numel()
    return flipped, total


def _common(model, task) -> dict:
    return dict(model=str(model), task=str(task), batch_size=16, lr=1e-2, epochs=3)


@pytest.mark.parametrize("rule", ["step-margin", "hold-margin", "hold-shift", "hold-movement"])
def test_the_budget_holds_after_every_step_and_at_every_evaluation(pretrained_tiny_bert, keyword_task, tmp_path,
                                                                   monkeypatch, rule):
    plain = train(TrainArgs(output=str(tmp_path / "plain.bundle"), **_common(pretrained_tiny_bert, keyword_task)))
    flipped, total = _bundle_flips(plain.output)
    limit = flipped // 3
    seen = {"step": [], "eval": []}
    after_step, before_evaluate = methods.MaskMethod.after_step, methods.MaskMethod.before_evaluate

    def spy_step(self, lr):
        after_step(self, lr)
        seen["step"].append(self.budget.flips())

    def spy_eval(self, model):
        before_evaluate(self, model)
        seen["eval"].append(self.budget.flips())

    monkeypatch.setattr(methods.MaskMethod, "after_step", spy_step)
    monkeypatch.setattr(methods.MaskMethod, "before_evaluate", spy_eval)
    result = train(TrainArgs(output=str(tmp_path / "b.bundle"), max_flips=limit / total, flip_budget_rule=rule,
                             **_common(pretrained_tiny_bert, keyword_task)))
    assert len(seen["eval"]) == 3 and max(seen["eval"]) <= limit and max(seen["step"]) <= limit
    assert max(seen["step"]) == limit  # the budget binds
    assert _bundle_flips(result.output)[0] <= limit
    assert read_meta(result.output)["training"]["max_flips"] == limit / total


def test_a_budget_of_zero_writes_the_initial_mask(pretrained_tiny_bert, keyword_task, tmp_path):
    result = train(TrainArgs(output=str(tmp_path / "z.bundle"), max_flips="0%",
                             **_common(pretrained_tiny_bert, keyword_task)))
    assert _bundle_flips(result.output)[0] == 0


def test_without_a_budget_the_run_and_its_record_are_unchanged(pretrained_tiny_bert, keyword_task, tmp_path):
    """No budget records nothing new (so the bundle's bytes are those of a run before budgets
    existed); a budget that never binds (100 %) learns the very same masks."""
    plain = train(TrainArgs(output=str(tmp_path / "p.bundle"), **_common(pretrained_tiny_bert, keyword_task)))
    loose = train(TrainArgs(output=str(tmp_path / "l.bundle"), max_flips="100%",
                            **_common(pretrained_tiny_bert, keyword_task)))
    training = read_meta(plain.output)["training"]
    assert "max_flips" not in training and "flip_budget_rule" not in training
    a, b = load_bundle(plain.output), load_bundle(loose.output)
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    assert all(torch.equal(a.head[k], b.head[k]) for k in a.head)


@pytest.mark.parametrize("rule", ["hold-margin", "hold-movement"])
def test_a_run_killed_and_resumed_ends_with_the_mask_of_an_uninterrupted_one(tiny_bert, keyword_task, tmp_path, rule):
    import signal
    import subprocess

    from tests.training.test_resume_and_ddp import ENV, MASKCTL, _interrupt, _train_args

    straight, killed = tmp_path / "straight.bundle", tmp_path / "killed.bundle"
    subprocess.run([*MASKCTL, *_train_args(tiny_bert, keyword_task, straight, "--max-flips", "0.5%", "--flip-budget-rule", rule)], env=ENV,
                   check=True, capture_output=True, timeout=600)
    ckpt = tmp_path / "killed.bundle.ckpt"
    _interrupt(_train_args(tiny_bert, keyword_task, killed, "--max-flips", "0.5%", "--flip-budget-rule", rule,
                           "--checkpoint-every", "7"), ckpt,
               signal.SIGKILL)
    resumed = subprocess.run([*MASKCTL, "train", "--resume", str(ckpt)], env=ENV, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert killed.read_bytes() == straight.read_bytes()
    flipped, total = _bundle_flips(straight)
    assert 0 < flipped <= math.floor(0.005 * total)
