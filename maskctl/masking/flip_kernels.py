"""numba kernels over ``FlipRows`` streams (``masking.flips``); importing this module needs numba.

``flip_terms`` adds every row group's term of one layer in one call: work items are (group,
block of output rows), run in parallel (numba's ``prange``); each decodes its rows sequentially,
sums ``v · Xᵀ[j, group's rows]`` over the row's flipped weights ``(i, j)`` into a small buffer
(contiguous reads over the group's token rows), then adds the buffer to column ``i`` of the
output once. A serial build of the same function serves batches too small to pay for waking the
thread pool.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from maskctl.masking.flips import ESCAPE


@njit(inline="always")
def _read(stream, at):
    value = np.int64(stream[at])
    if value < ESCAPE:
        return value, at + 1
    value = (np.int64(stream[at + 1]) | (np.int64(stream[at + 2]) << 8) | (np.int64(stream[at + 3]) << 16)
             | (np.int64(stream[at + 4]) << 24))
    return value, at + 5


def _flip_terms(stream, items, block, out_rows, w, wr, has_reference, xt, y):  # pragma: no cover - compiled
    """``items[t] = (byte offset of a block, first output row, first token row, end token row)``."""
    for t in prange(items.shape[0]):
        at, first, start, stop = items[t, 0], items[t, 1], items[t, 2], items[t, 3]
        acc = np.empty(stop - start, dtype=np.float32)
        for i in range(first, min(first + block, out_rows)):
            count, at = _read(stream, at)
            if count == 0:
                continue
            acc[:] = 0
            j = -1
            for _ in range(count):
                gap, at = _read(stream, at)
                j += gap + 1
                if has_reference:
                    r = wr[i, j]
                    v = w[i, j] if r == 0 else -r
                else:
                    v = -w[i, j]
                row = xt[j, start:stop]  # a slice: the loop below vectorizes (2x faster than 2-D indexing)
                for k in range(stop - start):
                    acc[k] += v * row[k]
            for k in range(stop - start):
                y[start + k, i] += acc[k]


# fastmath: the sums may be reordered (results stay within float32 rounding of the reference path)
flip_terms_parallel = njit(parallel=True, cache=True, nogil=True, fastmath=True)(_flip_terms)
flip_terms_serial = njit(cache=True, nogil=True, fastmath=True)(_flip_terms)


@njit(cache=True, nogil=True)
def add_flips_dense(stream, out_rows, w, wr, has_reference, dense):  # pragma: no cover - compiled
    """``dense += C`` in place: each flip's value gathered as in ``_flip_terms`` (for the exact
    weight of a group with many token rows: torch's index_put was the slow part of that path)."""
    at = 0
    for i in range(out_rows):
        count, at = _read(stream, at)
        j = -1
        for _ in range(count):
            gap, at = _read(stream, at)
            j += gap + 1
            if has_reference:
                r = wr[i, j]
                dense[i, j] += w[i, j] if r == 0 else -r
            else:
                dense[i, j] -= w[i, j]


@njit(cache=True, nogil=True)
def decode(stream, out_rows, rows, cols):  # pragma: no cover - compiled
    at = 0
    k = 0
    for i in range(out_rows):
        count, at = _read(stream, at)
        j = -1
        for _ in range(count):
            gap, at = _read(stream, at)
            j += gap + 1
            rows[k] = i
            cols[k] = j
            k += 1
