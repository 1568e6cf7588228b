"""MaskedLinear: straight-through gradients, initial sparsity, merging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from maskctl.masking.layer import MaskedLinear, initial_scores, score_upper_bound


def _layer(out_f=48, in_f=32, seed=0, **kw) -> MaskedLinear:
    torch.manual_seed(seed)
    return MaskedLinear(nn.Linear(in_f, out_f), **kw)


def test_forward_uses_weight_times_binary_mask():
    layer = _layer(init_sparsity=0.3)
    x = torch.randn(5, 32)
    mask = (layer.scores > layer.threshold).float()
    expected = x @ (layer.base_layer.weight * mask).T + layer.base_layer.bias
    assert torch.equal(layer(x), expected)
    assert 0 < (mask == 0).sum() < mask.numel()


def test_straight_through_gradient_is_grad_of_masked_weight_times_weight():
    layer = _layer(init_sparsity=0.2)
    x = torch.randn(7, 32)
    upstream = torch.randn(7, 48)
    (layer(x) * upstream).sum().backward()
    grad_masked_weight = upstream.T @ x  # dL/dW_hat for out = x W_hat^T + b
    expected = grad_masked_weight * layer.base_layer.weight
    torch.testing.assert_close(layer.scores.grad, expected, rtol=1e-5, atol=1e-6)
    # Where the mask is zero the gradient still flows (straight through), unlike W * mask.
    zeros = ~layer.binary_mask()
    assert layer.scores.grad[zeros].abs().sum() > 0


def test_only_scores_are_trainable():
    layer = _layer()
    trainable = [name for name, p in layer.named_parameters() if p.requires_grad]
    assert trainable == ["scores"]


@pytest.mark.parametrize("p", [0.01, 0.05, 0.3, 0.9])
def test_initial_sparsity_within_half_a_percent(p):
    layer = _layer(out_f=256, in_f=256, init_sparsity=p)
    observed = 1.0 - layer.binary_mask().float().mean().item()
    assert abs(observed - p) <= 0.005


def test_score_range_matches_official_initialisation():
    high = score_upper_bound(0.05, 0.01)
    assert high == pytest.approx((0.02 + 0.01) / 0.05 - 0.02)
    scores = initial_scores((300, 300), 0.05, 0.01, seed=3)
    assert scores.min() >= -0.02 and scores.max() < high
    assert scores.dtype == torch.float32


def test_initial_scores_are_reproducible_from_the_seed():
    a = initial_scores((64, 16), 0.05, 0.01, seed=7)
    b = initial_scores((64, 16), 0.05, 0.01, seed=7)
    c = initial_scores((64, 16), 0.05, 0.01, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_merged_linear_gives_the_same_outputs_bit_for_bit():
    layer = _layer(init_sparsity=0.4)
    x = torch.randn(9, 32)
    with torch.no_grad():
        wrapped = layer(x)
    merged = layer.merged_linear()
    with torch.no_grad():
        assert torch.equal(merged(x), wrapped)


def test_rejects_non_linear_and_bad_sparsity():
    with pytest.raises(TypeError):
        MaskedLinear(nn.Conv1d(2, 2, 1))
    with pytest.raises(ValueError):
        _layer(init_sparsity=0.0)


def _composed_grads(layer: MaskedLinear, x: torch.Tensor, upstream: torch.Tensor):
    """Reference: autograd through ``F.linear(x, W * STE(S))``, the unfused form."""
    x = x.detach().clone().requires_grad_(x.requires_grad)
    scores = layer.scores.detach().clone().requires_grad_(True)
    bias = layer.base_layer.bias.detach().clone().requires_grad_(True)
    from maskctl.masking.layer import BinarizeSTE

    w_hat = layer.base_layer.weight * BinarizeSTE.apply(scores, layer.threshold)
    (torch.nn.functional.linear(x, w_hat, bias) * upstream).sum().backward()
    return x.grad, scores.grad, bias.grad


@pytest.mark.parametrize("x_needs_grad", [True, False])
def test_fused_function_gives_the_composed_gradients(x_needs_grad):
    layer = _layer(init_sparsity=0.3)
    layer.base_layer.bias.requires_grad_(True)  # exercise the bias path as well
    x = torch.randn(3, 5, 32, requires_grad=x_needs_grad)
    upstream = torch.randn(3, 5, 48)
    (layer(x) * upstream).sum().backward()
    ref_x, ref_scores, ref_bias = _composed_grads(layer, x, upstream)
    torch.testing.assert_close(layer.scores.grad, ref_scores, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.base_layer.bias.grad, ref_bias)
    if x_needs_grad:
        torch.testing.assert_close(x.grad, ref_x, rtol=1e-5, atol=1e-6)
    else:
        assert x.grad is None


def test_backward_keeps_a_bool_mask_not_a_float_masked_weight():
    """Autograd must not hold a second float copy of W for backward (memory of every layer)."""
    layer = _layer(out_f=64, in_f=96)
    saved: list[torch.Tensor] = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    x = torch.randn(4, 96)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    weight = layer.base_layer.weight
    big = [t for t in saved if t.shape == weight.shape]
    assert {t.dtype for t in big} == {torch.float32, torch.bool}
    floats = [t for t in big if t.dtype == torch.float32]
    assert all(t.data_ptr() == weight.data_ptr() for t in floats)  # only W itself, not W_hat
    out.sum().backward()
    assert layer.scores.grad is not None
