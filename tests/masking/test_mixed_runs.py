"""MixedMaskLinear's runs: which row groups share a base product, and which get their own weight."""

from __future__ import annotations

import torch
from torch import nn

from maskctl.masking.mixed import (DENSE_MIN_TOKENS, Correction, MixedMaskLinear, RowGroup, Routing,
                                   correction_matrix)


def _layer() -> tuple[MixedMaskLinear, Routing]:
    torch.manual_seed(0)
    routing = Routing()
    layer = MixedMaskLinear(nn.Linear(8, 6).requires_grad_(False), "fc", routing)  # frozen, as served
    layer.references["seed0"] = layer.weight.detach() * (torch.rand(6, 8) > 0.2)
    return layer, routing


def _term(layer, reference=None, seed=1) -> Correction:
    mask = torch.rand(6, 8, generator=torch.Generator().manual_seed(seed)) > 0.3
    ref_mask = None if reference is None else layer.references[reference] != 0
    return Correction(correction_matrix(layer.weight, mask, ref_mask), reference)


def test_neighbouring_groups_on_one_reference_share_a_run():
    layer, routing = _layer()
    a, b = _term(layer, "seed0", 1), _term(layer, "seed0", 2)
    routing.groups = (RowGroup(0, 2, {"fc": a}), RowGroup(2, 3, {"fc": b}), RowGroup(3, 5, {}))
    runs = layer._runs(per_row=4)
    assert [(r.start, r.stop) for r in runs] == [(0, 3), (3, 5)]
    assert runs[0].weight is layer.references["seed0"] and runs[1].weight is layer.weight
    assert [(t.first, t.last, t.correction) for t in runs[0].terms] == [(0, 2, a), (2, 3, b)]
    assert runs[1].terms == []


def test_a_group_with_many_token_rows_gets_its_own_exact_weight():
    layer, routing = _layer()
    big, small = _term(layer, None, 3), _term(layer, None, 4)
    per_row = DENSE_MIN_TOKENS // 2  # two sequences of this many tokens reach the threshold, one does not
    routing.groups = (RowGroup(0, 1, {"fc": small}), RowGroup(1, 3, {"fc": big}), RowGroup(3, 4, {"fc": small}))
    runs = layer._runs(per_row=per_row)
    assert [(r.start, r.stop, len(r.terms)) for r in runs] == [(0, 1, 1), (1, 3, 0), (3, 4, 1)]
    torch.testing.assert_close(runs[1].weight, layer.weight + big.matrix.to_dense())


def test_mixed_forward_equals_each_task_on_its_own_masked_weight():
    layer, routing = _layer()
    masks = [torch.rand(6, 8, generator=torch.Generator().manual_seed(s)) > 0.3 for s in (5, 6)]
    terms = [Correction(correction_matrix(layer.weight, m)) for m in masks]
    x = torch.randn(4, 3, 8)
    routing.groups = (RowGroup(0, 2, {"fc": terms[0]}), RowGroup(2, 4, {"fc": terms[1]}))
    out = layer(x)
    for (start, stop), mask in zip([(0, 2), (2, 4)], masks):
        expected = nn.functional.linear(x[start:stop], layer.weight * mask, layer.bias)
        torch.testing.assert_close(out[start:stop], expected, rtol=1e-5, atol=1e-6)
    routing.groups = ()
    torch.testing.assert_close(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
