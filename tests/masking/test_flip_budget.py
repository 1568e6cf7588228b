"""--max-flips: the budget holds exactly after every step, the crossings of the largest
accumulated importance flip while the scores train freely, budget 0 is the initial mask, a
resumed run ends with the same mask, and a run without a budget is the run it was before
budgets existed."""

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
    """Two layers with 20 + 15 crossings each (bits started on pushed off, bits started off pushed on)."""
    layers, initial = {}, {}
    for name, (rows, cols) in {"a": (32, 48), "b": (24, 16)}.items():
        layer = MaskedLinear(nn.Linear(rows, cols), init_sparsity=0.3, seed=len(name) + rows)
        layers[name], initial[name] = layer, layer.binary_mask().clone()
        with torch.no_grad():
            on, off = initial[name].nonzero()[:20], (~initial[name]).nonzero()[:15]
            layer.scores[on[:, 0], on[:, 1]] = layer.threshold - 0.002
            layer.scores[off[:, 0], off[:, 1]] = layer.threshold + 0.002
    return layers, initial


def _flipped(layers, initial) -> int:
    return sum(int((layers[n].binary_mask() != initial[n]).sum()) for n in layers)


def _push(budget: FlipBudget, layers: dict[str, MaskedLinear], seed: int = 0) -> None:
    """One step's gradients: random, then accumulated as the trainer does before a step."""
    generator = torch.Generator().manual_seed(seed)
    for layer in layers.values():
        layer.scores.grad = torch.randn(layer.scores.shape, generator=generator)
    budget.accumulate()


def test_the_most_important_crossings_flip_and_the_rest_keep_their_initial_bit():
    layers, initial = _crossed_layers()
    before = {n: layer.scores.detach().clone() for n, layer in layers.items()}
    weights = sum(layer.scores.numel() for layer in layers.values())
    budget = FlipBudget(layers, 25 / weights)
    _push(budget, layers)
    for name, layer in layers.items():  # importance: the push towards the flipped side
        sign = torch.where(initial[name], 1.0, -1.0)
        torch.testing.assert_close(budget.importance[name], layer.scores.grad * sign)
    assert budget.budget == 25 and budget.flips() == 70
    assert budget.hold() == 45 and budget.flips() == 25
    crossed = {n: (before[n] > layers[n].threshold) != initial[n] for n in layers}
    cut = torch.cat([budget.importance[n][crossed[n]] for n in layers]).sort(descending=True).values[24]
    for name, layer in layers.items():
        flipped = layer.binary_mask() != initial[name]
        assert not (flipped & ~crossed[name]).any()
        assert (budget.importance[name][flipped] >= cut).all()
        assert (budget.importance[name][crossed[name] & ~flipped] < cut).all()
        assert torch.equal(layer.scores.detach(), before[name])  # the scores are never touched
    assert budget.hold() == 45 and budget.flips() == 25  # the same state: the same bits held


def test_a_held_score_keeps_learning_and_takes_a_place_once_it_matters_more():
    layers, initial = _crossed_layers()
    budget = FlipBudget(layers, 1 / sum(layer.scores.numel() for layer in layers.values()))
    layer = layers["a"]
    i, j = initial["a"].nonzero()[0].tolist()  # crossed (started on, now off)
    k, m = (~initial["a"]).nonzero()[0].tolist()  # crossed (started off, now on)
    budget.importance["a"][i, j], budget.importance["a"][k, m] = 2.0, 1.0
    budget.hold()
    assert bool(layer.binary_mask()[i, j]) is False and bool(layer.binary_mask()[k, m]) is False  # only (i, j) flipped
    budget.importance["a"][k, m] = 3.0  # the task now pushes (k, m) harder
    budget.hold()
    assert bool(layer.binary_mask()[i, j]) is True and bool(layer.binary_mask()[k, m]) is True
    assert budget.flips() == 1


def test_a_step_with_non_finite_gradients_adds_nothing():
    layers, _ = _crossed_layers()
    budget = FlipBudget(layers, 0.01)
    _push(budget, layers)
    before = {n: v.clone() for n, v in budget.importance.items()}
    layers["b"].scores.grad[0, 0] = float("inf")  # an fp16 overflow: the optimizer skips the step
    budget.accumulate()
    assert all(torch.equal(budget.importance[n], before[n]) for n in layers)


def test_ties_at_the_cut_flip_the_first_by_position():
    layer = MaskedLinear(nn.Linear(8, 8), init_sparsity=0.5, seed=1)
    initial = layer.binary_mask().clone()
    off = (~initial).nonzero()[:6]
    with torch.no_grad():
        layer.scores[off[:, 0], off[:, 1]] = layer.threshold + 0.003  # six crossings, no importance yet
    FlipBudget({"l": layer}, 4 / 64).hold()
    assert (layer.binary_mask() != initial).nonzero().tolist() == off[:4].tolist()


def test_a_budget_of_zero_gives_back_the_initial_mask():
    layers, initial = _crossed_layers()
    FlipBudget(layers, 0.0).hold()
    assert _flipped(layers, initial) == 0


@pytest.mark.parametrize("given, fraction", [("1.5%", 0.015), ("0.015", 0.015), (0.02, 0.02), ("0%", 0.0)])
def test_the_budget_is_a_share_or_a_percentage(given, fraction):
    assert math.isclose(TrainArgs(max_flips=given).max_flips, fraction)
    assert share(None) is None


@pytest.mark.parametrize(
    "given, message", [("lots", "is not a share"), ("150%", "out of range"), (-0.1, "out of range")]
)
def test_a_bad_budget_is_refused_with_a_fix(given, message):
    with pytest.raises(MaskctlError, match=message):
        TrainArgs(max_flips=given)


def test_a_card_or_recipe_may_set_the_budget():
    assert TrainArgs().with_task_defaults({"max_flips": {"mask": "1.5%"}}).max_flips == pytest.approx(0.015)
    assert TrainArgs(max_flips="3%").with_task_defaults({"max_flips": 0.01}).max_flips == 0.03  # the option wins
    assert TrainArgs(method="finetune").with_task_defaults({"max_flips": {"mask": 0.01}}).max_flips is None
    with pytest.raises(MaskctlError, match="defaults.max_flips 'some' is not a share"):
        TrainArgs().with_task_defaults({"max_flips": "some"})


def test_the_budget_is_refused_when_finetuning():
    with pytest.raises(MaskctlError, match="--max-flips applies to masking"):
        TrainArgs(method="finetune", max_flips=0.01)


def _bundle_flips(path) -> tuple[int, int]:
    """Bits of the bundle's masks that differ from the seed's initial masks, and all bits."""
    bundle = load_bundle(path)
    mask = bundle.meta["mask"]
    flipped = total = 0
    for name, bits in bundle.masks.items():
        start = (
            initial_scores(tuple(bits.shape), mask["init_sparsity"], mask["threshold"], layer_seed(mask["seed"], name))
            > mask["threshold"]
        )
        flipped += int((bits != start).sum())
        total += bits.numel()
    return flipped, total


def _common(model, task) -> dict:
    return dict(model=str(model), task=str(task), batch_size=16, lr=1e-2, epochs=3)


def test_the_budget_holds_after_every_step(pretrained_tiny_bert, keyword_task, tmp_path, monkeypatch):
    plain = train(TrainArgs(output=str(tmp_path / "plain.bundle"), **_common(pretrained_tiny_bert, keyword_task)))
    flipped, total = _bundle_flips(plain.output)
    limit = flipped // 3
    seen = []
    after_step = methods.MaskMethod.after_step

    def spy(self, lr):
        after_step(self, lr)
        seen.append(self.budget.flips())

    monkeypatch.setattr(methods.MaskMethod, "after_step", spy)
    result = train(
        TrainArgs(
            output=str(tmp_path / "b.bundle"), max_flips=limit / total, **_common(pretrained_tiny_bert, keyword_task)
        )
    )
    assert len(seen) == 3 * 15 and max(seen) == limit  # every step of 3 epochs in budget, and it binds
    assert _bundle_flips(result.output)[0] <= limit
    assert read_meta(result.output)["training"]["max_flips"] == limit / total


def test_a_budget_of_zero_writes_the_initial_mask(pretrained_tiny_bert, keyword_task, tmp_path):
    result = train(
        TrainArgs(output=str(tmp_path / "z.bundle"), max_flips="0%", **_common(pretrained_tiny_bert, keyword_task))
    )
    assert _bundle_flips(result.output)[0] == 0


def test_without_a_budget_the_run_and_its_record_are_unchanged(pretrained_tiny_bert, keyword_task, tmp_path):
    """No budget records nothing new (so the bundle's bytes are those of a run before budgets
    existed); a budget that never binds (99 %) and a lifted one (100 %, what overrides a card's
    bound) learn the very same masks."""
    plain = train(TrainArgs(output=str(tmp_path / "p.bundle"), **_common(pretrained_tiny_bert, keyword_task)))
    training = read_meta(plain.output)["training"]
    assert "max_flips" not in training
    a = load_bundle(plain.output)
    for bound in ("99%", "100%"):
        loose = train(
            TrainArgs(
                output=str(tmp_path / "l.bundle"),
                max_flips=bound,
                overwrite=True,
                **_common(pretrained_tiny_bert, keyword_task),
            )
        )
        b = load_bundle(loose.output)
        assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks), bound
        assert all(torch.equal(a.head[k], b.head[k]) for k in a.head), bound


def test_a_run_killed_and_resumed_ends_with_the_mask_of_an_uninterrupted_one(tiny_bert, keyword_task, tmp_path):
    import signal
    import subprocess

    from tests.training.test_resume_and_ddp import ENV, MASKCTL, _interrupt, _train_args

    straight, killed = tmp_path / "straight.bundle", tmp_path / "killed.bundle"
    subprocess.run(
        [*MASKCTL, *_train_args(tiny_bert, keyword_task, straight, "--max-flips", "0.5%")],
        env=ENV,
        check=True,
        capture_output=True,
        timeout=600,
    )
    ckpt = tmp_path / "killed.bundle.ckpt"
    _interrupt(
        _train_args(tiny_bert, keyword_task, killed, "--max-flips", "0.5%", "--checkpoint-every", "7"),
        ckpt,
        signal.SIGKILL,
    )
    resumed = subprocess.run(
        [*MASKCTL, "train", "--resume", str(ckpt)], check=False, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert killed.read_bytes() == straight.read_bytes()
    flipped, total = _bundle_flips(straight)
    assert 0 < flipped <= math.floor(0.005 * total)
