"""The compiled kernel (``flip_terms.c``) against its plain-PyTorch twin and the dense product:
every group size, mix and order; merge and undo bit for bit; the fallback when forced."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskctl.masking import kernels
from maskctl.masking.flips import Removed, encode
from maskctl.masking.kernels import reference

compiled = pytest.mark.skipif(not kernels.compiled_available(), reason="the kernel was not compiled at install")


def _setup(out: int, inp: int, tasks: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    weight = torch.from_numpy(rng.standard_normal((out, inp)).astype(np.float32))
    ref = rng.random((out, inp)) >= 0.05
    removed = Removed.of(weight.numpy(), ref)
    resident = weight.masked_fill(torch.from_numpy(~ref), 0.0)  # as ServedLinear.rebase: +0.0 where R removes
    masks = []
    for _ in range(tasks):
        mask = ref.copy()
        flipped = rng.random(ref.shape) < rng.choice([0.0, 0.01, 0.04, 0.3])
        mask[flipped] = ~mask[flipped]
        masks.append(mask)
    return weight, ref, removed, resident, masks


def test_the_build_is_there_where_a_compiler_was():
    """CI installs with gcc: the kernel must have been compiled and load (else serving would
    silently run the slow path)."""
    import shutil

    if shutil.which("cc") or shutil.which("gcc"):
        assert kernels.compiled_available()


@compiled
@pytest.mark.parametrize("shape", [(48, 40), (200, 72), (7, 13)])
@pytest.mark.parametrize("rows", [[1, 7, 24, 128], [128, 1, 24, 7, 3, 60, 33], [5] * 70])
def test_terms_equal_the_reference_and_the_dense_product(shape, rows):
    out_features, in_features = shape
    weight, ref, removed, resident, masks = _setup(out_features, in_features, len(rows))
    starts = np.concatenate([[0], np.cumsum(rows)])
    x = torch.randn(int(starts[-1]), in_features)
    groups = [(encode(m, ref, removed), int(a), int(b)) for m, a, b in zip(masks, starts[:-1], starts[1:])]
    base = torch.randn(x.shape[0], out_features)
    fast, slow = base.clone(), base.clone()
    kernels.add_terms(groups, resident, removed, x, fast)
    reference.add_terms(groups, resident, removed, x, slow)
    dense = base.clone()
    for mask, a, b in zip(masks, starts[:-1], starts[1:]):
        dense[a:b] += x[a:b] @ (weight * torch.from_numpy(mask) - resident).T
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(slow, dense, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("path", ["compiled", "torch"])
def test_apply_gives_the_exact_weight_and_undo_the_resident_one_bit_for_bit(path, monkeypatch):
    if path == "torch":
        monkeypatch.setenv("MASKCTL_KERNEL", "torch")
    elif not kernels.compiled_available():
        pytest.skip("the kernel was not compiled at install")
    weight, ref, removed, resident, masks = _setup(96, 80, 4, seed=3)
    before = resident.clone()
    for mask in masks:
        flips = encode(mask, ref, removed)
        saved = kernels.apply(flips, resident, removed)
        assert torch.equal(resident, weight * torch.from_numpy(mask))
        kernels.undo(flips, resident, removed, saved)
        assert torch.equal(resident.view(torch.int32), before.view(torch.int32))  # bit for bit, signs of zeros too


def test_the_fallback_runs_when_forced_or_for_other_tensors(monkeypatch):
    weight = torch.zeros(4, 4)
    monkeypatch.setenv("MASKCTL_KERNEL", "torch")
    assert not kernels.handles(weight) and not kernels.compiled_available()
    monkeypatch.delenv("MASKCTL_KERNEL")
    assert not kernels.handles(weight.to(torch.float64))


def test_a_build_of_another_version_is_not_used(monkeypatch, caplog):
    if not kernels.LIBRARY.exists():
        pytest.skip("the kernel was not compiled at install")
    kernels._library.cache_clear()
    monkeypatch.setattr(kernels, "VERSION", kernels.VERSION + 1)
    try:
        assert not kernels.compiled_available()
        assert "another version" in caplog.text
    finally:
        kernels._library.cache_clear()


@compiled
def test_any_thread_count_gives_the_same_terms():
    """The groups dealt out to 1, 2, 3 threads, then fewer again (idle workers stay idle)."""
    _weight, ref, removed, resident, masks = _setup(64, 48, 7, seed=5)
    x = torch.randn(7 * 9, 48)
    groups = [(encode(m, ref, removed), 9 * g, 9 * (g + 1)) for g, m in enumerate(masks)]
    want = torch.zeros(x.shape[0], 64)
    kernels.add_terms(groups, resident, removed, x, want, threads=1)
    for threads in (2, 3, 2, 1, 3):
        got = torch.zeros_like(want)
        kernels.add_terms(groups, resident, removed, x, got, threads=threads)
        assert torch.equal(got, want), threads
