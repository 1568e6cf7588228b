"""Compact hot corrections (``masking.flips``) and the compiled kernel against the CSR reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskctl.masking import flips as F
from maskctl.masking.mixed import correction_matrix

numba = pytest.importorskip("numba", reason="the compiled kernel needs the fast extra (numba)")


def _task(out: int, inp: int, flip: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out, inp, generator=gen)
    reference = torch.rand(out, inp, generator=gen) > 0.05
    mask = reference.clone()
    flipped = torch.rand(out, inp, generator=gen) < flip
    mask[flipped] = ~mask[flipped]
    return weight, reference, mask


def test_positions_round_trip_with_long_gaps_and_crowded_rows():
    flipped = torch.zeros(40, 2000, dtype=torch.bool)
    flipped[0, 1999] = True  # a first gap past 255: the escape
    flipped[1, [0, 1, 900, 1999]] = True
    flipped[2, :600] = True  # a count past 255
    flipped[39, 7] = True
    rows_empty_between = F.encode_flips(flipped)
    assert rows_empty_between.count == int(flipped.sum())
    rows, cols = F.positions(rows_empty_between)
    assert torch.equal(torch.from_numpy(rows * 2000 + cols), flipped.flatten().nonzero().flatten())
    assert rows_empty_between.blocks.shape[0] == 3  # one byte offset per 16 output rows


def test_bytes_per_flip_at_the_benchmarks_flip_rate():
    _, reference, mask = _task(1536, 384, 0.02, 0)
    flips = F.flips_of(mask, reference)
    # ~1 byte per flip and per row (its count), against 8 per flip for CSR values + indices
    assert flips.nbytes <= 1.1 * flips.count + 1536 + 8 * flips.blocks.shape[0]
    assert flips.nbytes < 0.15 * F_csr_bytes(flips.count, 1536)


def F_csr_bytes(nnz: int, rows: int) -> int:
    return nnz * 8 + (rows + 1) * 4


@pytest.mark.parametrize("with_reference", [True, False])
@pytest.mark.parametrize("parallel", [True, False])
def test_the_kernel_equals_the_csr_product_for_every_group(monkeypatch, with_reference, parallel):
    monkeypatch.setattr(F, "PARALLEL_MIN_WORK", 0 if parallel else 10**12)
    weight, reference, _ = _task(200, 72, 0.0, 1)
    ref_weight = weight * reference if with_reference else None
    tasks = [_task(200, 72, rate, seed)[2] for seed, rate in ((2, 0.03), (3, 0.2), (4, 0.0), (5, 0.01))]
    x = torch.randn(30, 72)
    spans = [(0, 4), (4, 19), (19, 20), (20, 30)]
    out = torch.randn(30, 200)
    want = out.clone()
    groups = []
    for mask, (a, b) in zip(tasks, spans):
        ref = reference if with_reference else None
        matrix = correction_matrix(weight, mask, ref)
        want[a:b] += (matrix @ x[a:b].T).T
        groups.append((F.flips_of(mask, ref), a, b))
    F.add_flip_terms(groups, weight, ref_weight, x, out)
    assert torch.allclose(out, want, atol=1e-5, rtol=1e-5)
    for mask, (flips, _, _) in zip(tasks, groups):  # the dense path's weight is exact
        base = ref_weight if with_reference else weight
        assert torch.equal(F.flipped_weight(flips, weight, base, ref_weight), weight * mask)


def test_the_kernel_can_be_switched_off(monkeypatch):
    weight = torch.randn(4, 4)
    assert F.kernel_handles(weight)
    assert not F.kernel_handles(weight.to(torch.float64))  # float32 only: else the CSR path
    monkeypatch.setenv("MASKCTL_KERNEL", "torch")
    assert not F.kernel_handles(weight) and not F.kernel_available()


def test_positions_decode_without_numba(monkeypatch):
    flipped = torch.from_numpy(np.random.default_rng(0).random((33, 700)) < 0.02)
    flips = F.encode_flips(flipped)
    compiled = F.positions(flips)
    monkeypatch.setitem(F._COMPILED, "kernels", None)
    plain = F.positions(flips)
    assert all(np.array_equal(a, b) for a, b in zip(compiled, plain))


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_exact_weight_and_mask_come_back_from_packed_flips(monkeypatch, compiled):
    """What serving holds (flips packed into one mapping) gives back the exact weight of the
    dense path and the mask a single-task run merges, with and without a reference."""
    if not compiled:
        monkeypatch.setitem(F._COMPILED, "kernels", None)
    weight, reference, mask = _task(70, 40, 0.05, 6)
    weight[3, :5] = 0.0  # zero weights: either bit gives the same term
    for ref in (reference, None):
        base = weight * ref if ref is not None else weight
        packed = F.pack_flips({"a": F.flips_of(mask, ref), "b": F.flips_of(~mask, ref)})
        assert packed["a"].stream.base.obj is packed["b"].blocks.base.obj  # one mapping for the task
        assert torch.equal(F.flipped_weight(packed["a"], weight, base, base if ref is not None else None),
                           weight * mask)
        seen = F.nonzero_mask(base) if ref is not None else None
        rebuilt = F.mask_from_flips(F.flips_of(mask, seen), seen)
        assert torch.equal(weight * rebuilt, weight * mask)


@pytest.mark.parametrize("count", [0, 1, 2])
def test_a_layer_with_one_flip_becomes_a_csr_matrix(count):
    """A single flipped weight (a 1-element index) once indexed as a scalar (found by the README test)."""
    from maskctl.masking.mixed import Correction

    weight, reference, _ = _task(8, 6, 0.0, 7)
    mask = reference.clone()
    for k in range(count):
        mask[k, 3] = ~mask[k, 3]
    base = weight * reference
    matrix = Correction(reference="seed", flips=F.flips_of(mask, reference)).as_matrix(weight, base).matrix
    assert torch.equal(base + matrix.to_dense(), weight * mask)
