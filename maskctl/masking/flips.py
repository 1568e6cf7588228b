"""A served task's mask on one layer in its one hot form: the bits it flips against the layer's
resident reference mask ``R``, and the single decoder of that form.

A served layer holds ``W ⊙ R`` as its weight (``R``: the initial mask most of its tasks were
trained from, regenerated from the seed; all ones when none) and, for the ~5 % of weights ``R``
removes, their values (``Removed``): one copy of the weights, not ``W`` and ``W ⊙ R``. A task's
mask ``M`` then differs from ``R`` in the few bits training flipped (~2-7 %): it *removes* some
weights ``R`` keeps (their value ``−W ⊙ R`` is read from the layer's weight) and *adds* back
some that ``R`` removes (their value comes from ``Removed``). ``Flips`` holds exactly that, per
output row, as two byte streams:

- ``counts``: the row's number of removes, then of adds;
- ``gaps``: the removes' column gaps, then the gaps between the adds' positions in the row's
  ``Removed`` list (an add needs no column of its own: the list has it).

A run length is bytes of 255 ("255 more") ended by a byte below 255, so a flip costs one byte
(plus ~2 bytes a row) where a CSR entry costs eight, and no value is stored: a served task is
its flips and nothing else. The compiled kernel (``masking/kernels``) reads these streams
directly; ``decode`` is the one decoder on the Python side (the plain-PyTorch path, tests).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from functools import cached_property

import numpy as np

RUN = 255  # a byte of 255 means "255 more"; the run ends at the first byte below it


@dataclass(frozen=True)
class Removed:
    """The weights a layer's reference mask removes: per output row their columns and ``W``'s
    values there (``rows[i]:rows[i + 1]`` are row ``i``'s entries, columns ascending)."""

    rows: np.ndarray  # int32, out + 1
    cols: np.ndarray  # uint16
    values: np.ndarray  # float32

    @classmethod
    def of(cls, weight: np.ndarray, reference: np.ndarray) -> Removed:
        """From the pristine weight (float32, out × in) and the reference mask (bool)."""
        if weight.shape[1] > np.iinfo(np.uint16).max + 1:
            raise ValueError(f"a served layer takes at most 65,536 inputs, not {weight.shape[1]}")
        removed = ~reference
        rows, cols = np.nonzero(removed)
        starts = np.zeros(weight.shape[0] + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=weight.shape[0]), out=starts[1:])
        return cls(starts, cols.astype(np.uint16), np.ascontiguousarray(weight[rows, cols], dtype=np.float32))

    @classmethod
    def none(cls, out_rows: int) -> Removed:
        """The reference mask of all ones: nothing removed (the weight is ``W`` itself)."""
        return cls(np.zeros(out_rows + 1, dtype=np.int32), np.zeros(0, dtype=np.uint16), np.zeros(0, dtype=np.float32))

    @property
    def count(self) -> int:
        return int(self.values.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.cols.nbytes + self.values.nbytes)

    @cached_property
    def addresses(self) -> tuple[int, int, int]:
        """Where ``rows``, ``cols`` and ``values`` start (for the compiled kernel)."""
        return self.rows.ctypes.data, self.cols.ctypes.data, self.values.ctypes.data

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of every removed weight, row-major."""
        rows = np.repeat(np.arange(self.rows.shape[0] - 1), np.diff(self.rows))
        return rows, self.cols.astype(np.int64)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The reference mask again (bool)."""
        mask = np.ones(shape, dtype=bool)
        mask[self.positions()] = False
        return mask


class Flips:
    """One task's flips on one layer against its reference (see the module docstring): the two
    streams as spans of one byte buffer (a task's layers share one, ``pack``).

    A plain class with ``__slots__`` and no tuples: a server holds one per task and served layer
    (thousands of tasks, dozens of layers: each field here costs that many times over), and a
    forward reads the streams' addresses for every group."""

    __slots__ = ("adds", "buffer", "counts_at", "end", "gaps_at", "middle", "removes", "start")

    def __init__(
        self, buffer: np.ndarray, start: int, middle: int, end: int, removes: int, adds: int, base: int | None = None
    ) -> None:
        self.buffer = buffer  # uint8: counts are buffer[start:middle], gaps buffer[middle:end]
        self.start, self.middle, self.end = start, middle, end
        self.removes, self.adds = removes, adds
        base = buffer.ctypes.data if base is None else base  # the buffer's address (given: it is slow to ask)
        self.counts_at, self.gaps_at = base + start, base + middle  # where the C kernel reads the streams

    @classmethod
    def of(cls, counts: np.ndarray, gaps: np.ndarray, removes: int, adds: int) -> Flips:
        return cls(np.concatenate([counts, gaps]), 0, counts.size, counts.size + gaps.size, removes, adds)

    @property
    def counts(self) -> np.ndarray:
        return self.buffer[self.start : self.middle]

    @property
    def gaps(self) -> np.ndarray:
        return self.buffer[self.middle : self.end]

    @property
    def count(self) -> int:
        return self.removes + self.adds

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Decoded:
    """Every flip of a ``Flips``: removes at (``remove_rows``, ``remove_cols``), adds at the
    ``Removed`` entries ``add_index`` (their row in ``add_rows``)."""

    remove_rows: np.ndarray
    remove_cols: np.ndarray
    add_rows: np.ndarray
    add_index: np.ndarray


def encode(mask: np.ndarray, reference: np.ndarray, removed: Removed) -> Flips:
    """The flips of ``mask`` (bool, out × in) against ``reference`` (whose removed weights are
    ``removed``)."""
    out_rows = mask.shape[0]
    remove_rows, remove_cols = np.nonzero(reference & ~mask)
    add_index = np.flatnonzero(mask[removed.positions()])
    add_rows = np.searchsorted(removed.rows, add_index, side="right") - 1
    removes = np.bincount(remove_rows, minlength=out_rows)
    adds = np.bincount(add_rows, minlength=out_rows)
    counts = np.stack([removes, adds], 1).reshape(-1)
    gaps = np.concatenate([_gaps(remove_rows, remove_cols), _gaps(add_rows, add_index - removed.rows[add_rows])])
    # every row: its removes' gaps, then its adds' gaps
    order = np.argsort(np.concatenate([remove_rows * 2, add_rows * 2 + 1]), kind="stable")
    return Flips.of(_runs_to_bytes(counts), _runs_to_bytes(gaps[order]), int(remove_rows.size), int(add_index.size))


def decode(flips: Flips, removed: Removed) -> Decoded:
    """Every flip's position (the one decoder of ``Flips`` on the Python side)."""
    counts = _bytes_to_runs(flips.counts).reshape(-1, 2)
    gaps = _bytes_to_runs(flips.gaps)
    segments = counts.reshape(-1)  # per row: removes, adds
    segment = np.repeat(np.arange(segments.size), segments)
    ends = np.cumsum(segments)
    steps = gaps + 1
    total = np.cumsum(steps)
    before = np.concatenate([[0], total])[ends - segments]  # the running sum at each segment's start
    position = total - before[segment] - 1
    is_add = segment % 2 == 1
    rows = segment // 2
    add_rows = rows[is_add]
    return Decoded(rows[~is_add], position[~is_add], add_rows, position[is_add] + removed.rows[add_rows])


def _gaps(rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per row-major (row, position) pairs: the zeros skipped before each (the first of a row
    counted from -1)."""
    positions = positions.astype(np.int64)
    previous = np.full(positions.shape, -1, dtype=np.int64)
    same_row = np.flatnonzero(rows[1:] == rows[:-1]) + 1
    previous[same_row] = positions[same_row - 1]
    return positions - previous - 1


def _runs_to_bytes(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    lengths = values // RUN + 1
    stream = np.full(int(lengths.sum()), RUN, dtype=np.uint8)
    stream[np.cumsum(lengths) - 1] = values % RUN
    return stream


def _bytes_to_runs(stream: np.ndarray) -> np.ndarray:
    ends = np.flatnonzero(stream < RUN)
    previous = np.concatenate([[-1], ends[:-1]])
    return stream[ends].astype(np.int64) + RUN * (ends - previous - 1)


def pack(layers: dict[str, Flips]) -> dict[str, Flips]:
    """The same flips, every layer's bytes moved into one anonymous memory mapping (one per task).

    Why: a task's small buffers would sit in malloc's heap between the large temporaries of
    loading, and an unload would leave holes there; one mapping of exactly those bytes
    (page-rounded) goes back to the system whole when the task is dropped (the views keep it
    alive)."""
    size = sum(flips.nbytes for flips in layers.values())
    if not size:
        return layers
    space = np.frombuffer(mmap.mmap(-1, size), dtype=np.uint8)
    base, at, out = space.ctypes.data, 0, {}
    for name, flips in layers.items():
        space[at : at + flips.nbytes] = flips.buffer[flips.start : flips.end]
        out[name] = Flips(
            space, at, at + flips.middle - flips.start, at + flips.nbytes, flips.removes, flips.adds, base
        )
        at += flips.nbytes
    return out
