"""CorrectionCache: the LRU of decoded corrections that mixed batches read (bounded in bytes)."""

from __future__ import annotations

import torch

from maskctl.masking.mixed import Correction, csr
from maskctl.serving.memory import CorrectionCache


def _corrections(nonzeros: int) -> dict[str, Correction]:
    """One layer's CSR term with ``nonzeros`` entries in a 4 x 64 matrix: 8 bytes a nonzero
    (int32 column + float32 value) and 4 per row pointer (5 of them)."""
    rows = torch.arange(nonzeros) % 4
    cols = torch.arange(nonzeros) // 4
    order = torch.argsort(rows * 64 + cols)
    return {"layer": Correction(csr((rows[order], cols[order]), torch.ones(nonzeros), (4, 64)))}


def _size(nonzeros: int) -> int:
    return nonzeros * 8 + 5 * 4


def test_get_builds_once_then_hits():
    cache = CorrectionCache(10_000)
    built = []
    build = lambda: built.append(1) or _corrections(8)  # noqa: E731
    first = cache.get("a", build)
    again = cache.get("a", build)
    assert first is again and len(built) == 1 and cache.misses == 1
    assert cache.bytes == _size(8) and "a" in cache


def test_least_recently_used_is_evicted_first():
    cache = CorrectionCache(3 * _size(8))
    for name in "abc":
        cache.put(name, _corrections(8))
    cache.get("a", lambda: _corrections(8))  # a is now the most recent
    cache.put("d", _corrections(8))
    assert cache.names() == ["c", "a", "d"]
    assert cache.bytes == 3 * _size(8) <= cache.limit_bytes


def test_pinned_and_always_pinned_tasks_are_never_evicted():
    cache = CorrectionCache(2 * _size(8))
    cache.always.add("kept")
    cache.put("kept", _corrections(8))
    cache.put("batch", _corrections(8))
    cache.put("new", _corrections(8), pinned=frozenset({"batch"}))
    # all three are pinned (kept always, batch and new for the running batch): over the bound
    assert set(cache.names()) == {"kept", "batch", "new"} and cache.bytes > cache.limit_bytes
    cache.trim()  # after the batch: only what is not pinned for good goes, oldest first
    assert cache.names() == ["kept", "new"] and cache.bytes <= cache.limit_bytes


def test_put_replaces_and_drop_forgets_the_bytes():
    cache = CorrectionCache(10_000)
    cache.put("a", _corrections(8))
    cache.put("a", _corrections(16))
    assert cache.bytes == _size(16)
    cache.drop("a")
    cache.drop("missing")  # no error
    assert cache.bytes == 0 and cache.names() == []


def test_zero_limit_keeps_only_the_entry_being_used():
    cache = CorrectionCache(0)
    cache.put("a", _corrections(8))
    assert cache.names() == ["a"]  # the one being put is pinned while it is used
    cache.put("b", _corrections(8))
    assert cache.names() == ["b"]
