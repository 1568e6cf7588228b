"""A served task's hot form (``masking.flips``): flips against a reference mask as byte streams,
and their one decoder."""

from __future__ import annotations

import numpy as np
import pytest

from maskctl.masking.flips import Removed, decode, encode, pack


def _layer(out: int, inp: int, removed: float, seed: int):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((out, inp)).astype(np.float32)
    reference = rng.random((out, inp)) >= removed
    return weight, reference


def _flip(reference: np.ndarray, rate: float, seed: int) -> np.ndarray:
    mask = reference.copy()
    flipped = np.random.default_rng(seed).random(reference.shape) < rate
    mask[flipped] = ~mask[flipped]
    return mask


def _rebuilt(flips, reference, removed) -> np.ndarray:
    found = decode(flips, removed)
    mask = reference.copy()
    assert not mask[found.add_rows, removed.cols[found.add_index]].any()  # adds: where R removes
    assert mask[found.remove_rows, found.remove_cols].all()  # removes: where R keeps
    mask[found.remove_rows, found.remove_cols] = False
    mask[found.add_rows, removed.cols[found.add_index]] = True
    return mask


@pytest.mark.parametrize("removed_rate,flip_rate", [(0.05, 0.03), (0.0, 0.05), (0.3, 0.5), (0.05, 0.0)])
def test_round_trip(removed_rate, flip_rate):
    weight, reference = _layer(64, 96, removed_rate, 1)
    removed = Removed.of(weight, reference)
    mask = _flip(reference, flip_rate, 2)
    flips = encode(mask, reference, removed)
    assert flips.count == int((mask != reference).sum())
    assert flips.removes == int((reference & ~mask).sum()) and flips.adds == int((~reference & mask).sum())
    assert np.array_equal(_rebuilt(flips, reference, removed), mask)
    assert np.array_equal(removed.mask(reference.shape), reference)
    rows, cols = removed.positions()
    assert np.array_equal(removed.values, weight[rows, cols])


def test_runs_of_255_and_more_in_counts_and_gaps():
    weight, reference = _layer(6, 2000, 0.0, 3)
    reference[4, :700] = False  # 700 removed weights in one row
    removed = Removed.of(weight, reference)
    mask = reference.copy()
    mask[0, 1999] = False  # a first gap past 255
    mask[1, [0, 1, 254, 255, 509, 1999]] = False  # gaps of exactly 254, 255 and more
    mask[2, :600] = False  # a count past 255 (two bytes of 255 and a rest)
    mask[4, [0, 255, 510, 699]] = True  # adds far apart in a long removed list
    flips = encode(mask, reference, removed)
    assert (flips.gaps == 255).any() and (flips.counts == 255).any()
    assert np.array_equal(_rebuilt(flips, reference, removed), mask)


def test_a_flip_costs_about_one_byte():
    """At the trained bundles' flip rates: ~1 byte per flip and 2 per row, against 8 per flip
    (float32 value + int32 column) of a CSR matrix."""
    weight, reference = _layer(1536, 384, 0.05, 4)
    flips = encode(_flip(reference, 0.035, 5), reference, Removed.of(weight, reference))
    assert flips.nbytes <= 1.01 * flips.count + 2 * 1536
    assert flips.nbytes < 0.2 * (8 * flips.count + 4 * 1537)


def test_pack_moves_a_task_into_one_mapping_unchanged():
    weight, reference = _layer(32, 40, 0.1, 6)
    removed = Removed.of(weight, reference)
    layers = {f"l{i}": encode(_flip(reference, 0.1, i), reference, removed) for i in range(3)}
    packed = pack(layers)
    for name, flips in layers.items():
        assert np.array_equal(packed[name].counts, flips.counts) and np.array_equal(packed[name].gaps, flips.gaps)
        assert packed[name].buffer is packed["l0"].buffer  # one mapping for the task
        assert np.array_equal(_rebuilt(packed[name], reference, removed), _rebuilt(flips, reference, removed))


def test_a_too_wide_layer_is_refused():
    with pytest.raises(ValueError, match="at most 65,536 inputs"):
        Removed.of(np.zeros((1, 70_000), np.float32), np.ones((1, 70_000), bool))
