"""``ServedLinear`` / ``ServedLayerNorm``: the one contract by which a served task's mask is
applied (rebase, add/remove a task, merge/unmerge, mixed rows, bytes), against plain products."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from maskctl.masking import kernels, served
from maskctl.masking.served import Group, Routing, ServedLayerNorm, ServedLinear

PATHS = ["compiled", "torch"]


def _path(name, monkeypatch):
    if name == "torch":
        monkeypatch.setenv("MASKCTL_KERNEL", "torch")
    elif not kernels.compiled_available():
        pytest.skip("the kernel was not compiled at install")


def _layer(seed: int = 0, out: int = 40, inp: int = 24, tasks: int = 4):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    base = nn.Linear(inp, out)
    pristine = base.weight.detach().clone()
    reference = rng.random((out, inp)) >= 0.1
    routing = Routing()
    layer = ServedLinear(base, "layer", routing)
    layer.rebase("seed", reference)
    masks = {}
    for t in range(tasks):
        mask = reference.copy()
        flipped = rng.random(reference.shape) < [0.05, 0.2, 0.0, 0.01][t % 4]
        mask[flipped] = ~mask[flipped]
        masks[f"t{t}"] = mask
        layer.add_task(f"t{t}", layer.encode(mask))
    return layer, routing, pristine, masks


def _alone(x, pristine, bias, mask):
    return nn.functional.linear(x, pristine * torch.from_numpy(mask), bias)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dense_from", [served.DENSE_MIN_TOKENS, 1, 10**9])
@pytest.mark.parametrize("tokens", [1, 7, 24, 128])
def test_mixed_rows_equal_each_task_alone(path, dense_from, tokens, monkeypatch):
    """Groups of 1, 7, 24 and 128 token rows, in shuffled order, with a task that does not mask
    this layer (all ones: the pristine weight), through the shared product + term, or as a
    dense product of their own."""
    _path(path, monkeypatch)
    monkeypatch.setattr(served, "DENSE_MIN_TOKENS", dense_from)
    layer, routing, pristine, masks = _layer()
    layer.add_task("plain", layer.encode(None))
    masks["plain"] = np.ones_like(masks["t0"])
    names = list(masks)
    random.Random(tokens).shuffle(names)
    sizes = [1, 3, 2, 1, 4]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    groups = [Group(int(a), int(b), name) for name, a, b in zip(names, starts[:-1], starts[1:])]
    x = torch.randn(int(starts[-1]), tokens, 24)
    resident = layer.weight.detach().clone()
    with torch.inference_mode(), routing.route(groups):
        y = layer(x)
    for group in groups:
        want = _alone(x[group.start : group.stop], pristine, layer.bias, masks[group.task])
        torch.testing.assert_close(y[group.start : group.stop], want, rtol=1e-5, atol=1e-5)
    assert torch.equal(layer.weight.view(torch.int32), resident.view(torch.int32))  # long groups were undone


@pytest.mark.parametrize("path", PATHS)
def test_merge_and_unmerge_in_any_order_leave_the_weight_bit_for_bit(path, monkeypatch):
    _path(path, monkeypatch)
    layer, _, pristine, masks = _layer(seed=1)
    resident = layer.weight.detach().clone()
    x = torch.randn(5, 24)
    order = ["t0", "t1", "t1", "t3", "t2", "t0"]
    for name in order:
        layer.merge(name)
        assert torch.equal(layer.weight, pristine * torch.from_numpy(masks[name]))
        torch.testing.assert_close(layer(x), _alone(x, pristine, layer.bias, masks[name]), rtol=0, atol=0)
    layer.unmerge()
    assert torch.equal(layer.weight.view(torch.int32), resident.view(torch.int32))
    layer.merge("t1")
    layer.remove_task("t1")  # a merged task that goes is unmerged first
    assert torch.equal(layer.weight.view(torch.int32), resident.view(torch.int32))


def test_pristine_puts_w_back_for_the_duration_and_rebase_happens_once():
    layer, _, pristine, _ = _layer(seed=2)
    held = layer.weight.detach().clone()
    with layer.pristine():
        assert torch.equal(layer.weight, pristine)
    assert torch.equal(layer.weight.view(torch.int32), held.view(torch.int32))
    with pytest.raises(RuntimeError, match="rebased once"):
        layer.rebase("other", np.ones((40, 24), bool))


def test_a_task_holds_its_flips_and_bias_delta_only():
    layer, _, _, masks = _layer(seed=3)
    flips = layer.flips["t1"]
    assert layer.nbytes("t1") == flips.nbytes and flips.count == int((masks["t1"] != layer.reference_mask()).sum())
    assert "t2" not in layer.flips and layer.nbytes("t2") == 0  # no flip: nothing held
    layer.add_task("t2", None, torch.full((40,), 0.5, dtype=torch.float16))
    assert layer.nbytes("t2") == 80
    layer.remove_task("t1")
    assert layer.nbytes("t1") == 0 and "t1" not in layer.flips


@pytest.mark.parametrize("path", PATHS)
def test_tuned_bias_and_layernorm_on_their_rows_and_merged(path, monkeypatch):
    _path(path, monkeypatch)
    layer, routing, pristine, masks = _layer(seed=4)
    delta = (torch.randn(40) * 0.1).to(torch.float16)
    layer.add_task("t0", layer.flips["t0"], delta)
    norm = ServedLayerNorm(nn.LayerNorm(40), "norm", routing)
    weight_delta = (torch.randn(40) * 0.1).to(torch.float16)
    norm.add_task("t0", weight_delta, None)
    x = torch.randn(3, 2, 24)
    groups = [Group(0, 1, "t1"), Group(1, 3, "t0")]
    with torch.inference_mode(), routing.route(groups):
        y = norm(layer(x))
    tuned_bias = layer.bias + delta.float()
    want_t0 = nn.functional.layer_norm(
        _alone(x[1:], pristine, tuned_bias, masks["t0"]),
        (40,),
        norm.base_layer.weight + weight_delta.float(),
        norm.base_layer.bias,
    )
    torch.testing.assert_close(y[1:], want_t0, rtol=1e-5, atol=1e-5)
    want_t1 = norm.base_layer(_alone(x[:1], pristine, layer.bias, masks["t1"]))
    torch.testing.assert_close(y[:1], want_t1, rtol=1e-5, atol=1e-5)
    bias, ln = layer.bias.detach().clone(), norm.base_layer.weight.detach().clone()
    layer.merge("t0")
    norm.merge("t0")
    torch.testing.assert_close(norm(layer(x[1:])), want_t0, rtol=1e-5, atol=1e-5)
    layer.unmerge()
    norm.unmerge()
    assert torch.equal(layer.bias, bias) and torch.equal(norm.base_layer.weight, ln)
