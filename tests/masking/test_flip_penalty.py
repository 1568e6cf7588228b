"""--flip-penalty: crossed scores move back by lr x strength, nothing else moves, fewer bits flip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from maskctl.bundle.format import read_meta
from maskctl.bundle.stats import mask_stats
from maskctl.errors import MaskctlError
from maskctl.masking.flip_penalty import FlipPenalty
from maskctl.masking.layer import MaskedLinear
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train


def _crossed_layer(dtype=torch.float32) -> tuple[MaskedLinear, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    layer = MaskedLinear(nn.Linear(32, 48), init_sparsity=0.3, seed=7)
    initial = layer.binary_mask().clone()
    with torch.no_grad():  # push some kept bits off and some removed bits on, leave the rest
        on = initial.nonzero()[:40].T
        off = (~initial).nonzero()[:30].T
        layer.scores[on[0], on[1]] = layer.threshold - 0.004
        layer.scores[off[0], off[1]] = layer.threshold + 0.004
    layer.scores.data = layer.scores.data.to(dtype)
    return layer, initial, layer.scores.detach().clone()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["numpy-path", "torch-path"])
def test_only_crossed_scores_move_back_by_lr_times_strength(dtype):
    layer, initial, before = _crossed_layer(dtype)
    pull = FlipPenalty({"l": layer}, strength=0.5)
    assert torch.equal(pull.initial["l"], initial)  # the initial side comes from the seed
    pull.step(lr=0.01)
    moved = layer.scores.detach() - before
    crossed = (before > layer.threshold) != initial
    assert int(crossed.sum()) == 70
    expected = torch.where(initial, 0.005, -0.005).to(dtype)  # towards the side each bit started on
    torch.testing.assert_close(moved[crossed], expected[crossed])
    assert torch.equal(moved[~crossed], torch.zeros_like(moved[~crossed]))
    assert torch.equal(layer.binary_mask(), initial)  # 0.004 from the threshold: all back


def test_the_initial_side_is_the_seeds_even_after_training_moved_the_scores():
    layer, initial, _ = _crossed_layer()
    assert not torch.equal(layer.binary_mask(), initial)
    assert torch.equal(FlipPenalty({"l": layer}, 1.0).initial["l"], initial)  # a resumed run: the same pull


def _flips(bundle) -> float:
    return mask_stats(read_meta(bundle)).flip_rate


def test_a_penalty_flips_fewer_bits_and_zero_changes_nothing(pretrained_tiny_bert, keyword_task, tmp_path):
    common = dict(model=str(pretrained_tiny_bert), task=str(keyword_task), batch_size=16, lr=1e-2, epochs=2)
    plain = train(TrainArgs(output=str(tmp_path / "plain.bundle"), **common))
    zero = train(TrainArgs(output=str(tmp_path / "zero.bundle"), flip_penalty=0.0, **common))
    pulled = train(TrainArgs(output=str(tmp_path / "pulled.bundle"), flip_penalty=0.9, **common))
    assert zero.output.read_bytes() == plain.output.read_bytes()
    assert _flips(pulled.output) < 0.5 * _flips(plain.output)
    assert (tmp_path / "pulled.bundle").stat().st_size < (tmp_path / "plain.bundle").stat().st_size
    assert read_meta(pulled.output)["training"]["flip_penalty"] == 0.9


def test_the_penalty_is_refused_when_finetuning():
    with pytest.raises(MaskctlError, match="--flip-penalty applies to masking"):
        TrainArgs(method="finetune", flip_penalty=0.5)
