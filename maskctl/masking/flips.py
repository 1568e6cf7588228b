"""A hot task's term in its most compact form: which weights it flips, and one kernel that adds
``x Cₜᵀ`` reading that form directly.

A task's correction against its reference mask ``R`` is ``Cₜ = W ⊙ (Mₜ − R)``; its values are
the resident weights (``+W`` where the task keeps a weight ``R`` removes, ``−W`` where it removes
one ``R`` keeps), so only the flipped positions need storing. ``FlipRows`` keeps, per output row,
the row's flip count and the gaps between its sorted column positions as bytes (a value under 255
is one byte, else 255 and four bytes): at 2 % flips about 1.05 bytes per flip plus ~1 byte per row,
against 8 bytes per flip (float32 value + int32 index) of a CSR matrix. The entropy floor of the
pattern is H(p)/p bits per flip (7.1 bits at 2 %): this form is ~20 % above it and reads with no
table. A byte offset every ``BLOCK`` rows lets the kernel run blocks of rows in parallel.

The kernel (``add_flip_terms``: every group of one layer in one call, numba, parallel over
blocks of rows) reads the activations transposed, ``Xᵀ`` (features × rows), so the inner loop
over a group's rows is contiguous for each flipped weight, and writes each output column once
(a first kernel that read ``X`` row by row ran slower than MKL's CSR product, and one that added
a transposed buffer afterwards lost to it too: the layout decides; ``flip_kernels.py``). numba is an optional extra (``pip install
"maskctl[fast]"``): without it, or with ``MASKCTL_KERNEL=torch``, or for tensors it does not
handle (CUDA, dtypes other than float32), serving uses the CSR path of ``masking.mixed``, which is
the reference the kernel is tested equal to.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import numpy as np
import torch

BLOCK = 16  # output rows per parallel work item (and per stored byte offset)
ESCAPE = 255  # a stored byte: the value follows in four bytes (flip_kernels reads the same)


@dataclass(frozen=True)
class FlipRows:
    """One layer's flipped positions: per output row its count and column gaps, as bytes."""

    stream: np.ndarray  # uint8
    blocks: np.ndarray  # int64 byte offset of each block of BLOCK rows
    shape: tuple[int, int]
    count: int  # flipped weights

    @property
    def nbytes(self) -> int:
        return int(self.stream.nbytes + self.blocks.nbytes)


def encode_flips(flipped: torch.Tensor) -> FlipRows:
    """``FlipRows`` of a boolean (out, in) matrix of flipped positions."""
    flat = flipped.detach().to("cpu", torch.bool).numpy()
    out_rows = flat.shape[0]
    rows, cols = np.nonzero(flat)  # row-major: sorted by row, then column
    counts = np.bincount(rows, minlength=out_rows)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    gaps = cols.astype(np.int64) + 1
    gaps[1:] -= np.where(rows[1:] == rows[:-1], cols[:-1].astype(np.int64) + 1, 0)
    gaps -= 1  # the first column of a row as is, then the zeros skipped between flips
    # The stream: each row's count, then its gaps (rows with no flip hold a count of 0).
    values = np.empty(out_rows + rows.size, dtype=np.int64)
    count_at = starts + np.arange(out_rows)
    values[count_at] = counts
    gap_at = np.ones(values.size, dtype=bool)
    gap_at[count_at] = False
    values[gap_at] = gaps
    sizes = np.where(values < ESCAPE, 1, 5)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    stream = np.zeros(int(offsets[-1]), dtype=np.uint8)
    small = values < ESCAPE
    stream[offsets[:-1][small]] = values[small]
    for at, value in zip(offsets[:-1][~small], values[~small]):  # rare: a gap of 255+ zeros
        stream[at] = ESCAPE
        stream[at + 1:at + 5] = np.frombuffer(int(value).to_bytes(4, "little"), dtype=np.uint8)
    blocks = offsets[count_at[::BLOCK]].astype(np.int64)
    return FlipRows(stream, blocks, (out_rows, flat.shape[1]), int(rows.size))


def pack_flips(layers: dict[str, FlipRows]) -> dict[str, FlipRows]:
    """The same flips, every array moved into one anonymous memory mapping per task.

    Why: a task's ~70 small arrays would sit in malloc's heap between the large temporaries
    of loading, and an unload would leave holes there; one mapping of exactly those bytes
    (page-rounded) is returned to the system whole when the task goes (the arrays keep it
    alive). At 64 MiniLM tasks the RSS per task measured the same either way, within noise."""
    sizes = [part.nbytes for rows in layers.values() for part in (rows.blocks, rows.stream)]
    if not sizes:
        return layers
    space = mmap.mmap(-1, sum(sizes))
    at, out = 0, {}
    for name, rows in layers.items():
        parts = []
        for part in (rows.blocks, rows.stream):
            view = np.frombuffer(space, dtype=part.dtype, count=part.size, offset=at)
            view[:] = part
            parts.append(view)
            at += part.nbytes
        out[name] = FlipRows(parts[1], parts[0], rows.shape, rows.count)
    return out


def flips_of(mask: torch.Tensor, reference: torch.Tensor | None) -> FlipRows:
    """The positions where ``mask`` differs from ``reference`` (None: the all-ones mask)."""
    bits = mask.detach().to("cpu", torch.bool).numpy()
    flipped = ~bits if reference is None else bits != reference.detach().to("cpu", torch.bool).numpy()
    return encode_flips(torch.from_numpy(flipped))


def nonzero_mask(weight: torch.Tensor) -> torch.Tensor:
    """``weight != 0`` as a bool tensor: a reference weight ``W ⊙ R`` gives back ``R`` (where W
    is zero either bit gives the same term). Through numpy on CPU, which is ~25× faster here
    than torch's comparison (MiniLM: 6 ms against 130 ms per task loaded)."""
    if weight.device.type == "cpu":
        return torch.from_numpy(weight.detach().numpy() != 0)
    return weight != 0


def mask_from_flips(flips: FlipRows, reference: torch.Tensor | None) -> torch.Tensor:
    """The task's mask again: ``reference`` (None: all ones) with the flipped positions turned.
    A task held as flips alone (serving drops its coded masks) is merged through this."""
    if reference is None:
        mask = torch.ones(flips.shape, dtype=torch.bool)
    else:
        mask = reference.detach().to("cpu", torch.bool).clone()
    rows, cols = positions(flips)
    rows_t, cols_t = torch.from_numpy(rows), torch.from_numpy(cols)
    mask[rows_t, cols_t] = ~mask[rows_t, cols_t]
    return mask


def _disabled() -> bool:
    return os.environ.get("MASKCTL_KERNEL", "").lower() in ("torch", "off", "0", "no")


def kernel_available() -> bool:
    """Whether the compiled kernel can run here (numba importable and not switched off)."""
    return not _disabled() and _kernels() is not None


def kernel_handles(weight: torch.Tensor) -> bool:
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and kernel_available()


_COMPILED: dict[str, object] = {}


def _kernels():
    """The numba functions, compiled on first use (cached on disk); None without numba."""
    if "kernels" in _COMPILED:
        return _COMPILED["kernels"]
    try:
        from maskctl.masking import flip_kernels
    except ImportError:  # numba is an optional extra
        _COMPILED["kernels"] = None
        return None
    _COMPILED["kernels"] = flip_kernels
    return flip_kernels


# From this much work (flips × token rows, summed over a call's groups) on, the call runs its
# blocks on numba's thread pool; below it, waking the pool costs more than it saves.
PARALLEL_MIN_WORK = 400_000


def add_flip_terms(groups: list[tuple[FlipRows, int, int]], weight: torch.Tensor, reference: torch.Tensor | None,
                   x: torch.Tensor, out: torch.Tensor) -> None:
    """``out[a:b] += x[a:b] Cᵀ`` for every (flips, a, b) of one layer, in one kernel call:
    ``C`` read from the flips with values gathered from ``weight`` and the reference weight
    ``W ⊙ R`` (None: the all-ones reference). ``x`` is (rows × in), ``out`` (rows × out)."""
    kernels = _kernels()
    # Work items (byte offset of a block, its first output row, the group's token rows): the
    # groups of one layer share its shape, so one table is built with a few whole-array steps.
    per = groups[0][0].blocks.shape[0]
    sizes = np.array([flips.stream.shape[0] for flips, _, _ in groups], dtype=np.int64)
    items = np.empty((per * len(groups), 4), dtype=np.int64)
    items[:, 0] = np.concatenate([flips.blocks for flips, _, _ in groups])
    items[:, 0] += np.repeat(np.cumsum(sizes) - sizes, per)
    items[:, 1] = np.tile(np.arange(per, dtype=np.int64) * BLOCK, len(groups))
    items[:, 2] = np.repeat(np.array([start for _, start, _ in groups], dtype=np.int64), per)
    items[:, 3] = np.repeat(np.array([stop for _, _, stop in groups], dtype=np.int64), per)
    stream = groups[0][0].stream if len(groups) == 1 else np.concatenate([flips.stream for flips, _, _ in groups])
    xt = np.ascontiguousarray(x.detach().numpy().T)
    w = weight.detach().numpy()
    wr = w if reference is None else reference.detach().numpy()
    work = sum(flips.count * (stop - start) for flips, start, stop in groups)
    run = kernels.flip_terms_parallel if work >= PARALLEL_MIN_WORK else kernels.flip_terms_serial
    run(stream, items, BLOCK, weight.shape[0], w, wr, reference is not None, xt, out.detach().numpy())


def flipped_weight(flips: FlipRows, weight: torch.Tensor, base: torch.Tensor, reference: torch.Tensor | None
                   ) -> torch.Tensor:
    """The task's exact weight ``base + C`` (a dense copy, for groups with many token rows)."""
    dense = base.detach().clone()
    kernels = _kernels()
    w = weight.detach().numpy()
    if kernels is not None:
        kernels.add_flips_dense(flips.stream, flips.shape[0], w, w if reference is None else reference.detach().numpy(),
                                reference is not None, dense.numpy())
        return dense
    rows, cols, values = flip_values(flips, weight, reference)
    dense.numpy()[rows, cols] += values  # positions are distinct: a plain fancy-index add
    return dense


def flip_values(flips: FlipRows, weight: torch.Tensor, reference: torch.Tensor | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, values) of ``C``: ``+W`` where the task keeps a weight the reference
    ``W ⊙ R`` removes, ``−W`` elsewhere (None: the all-ones reference). numpy indices: a
    1-element tensor would index as a scalar."""
    rows, cols = positions(flips)
    values = weight.detach().numpy()[rows, cols]
    if reference is None:
        return rows, cols, -values
    return rows, cols, np.where(reference.detach().numpy()[rows, cols] != 0, -values, values)


def positions(flips: FlipRows) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of every flip, decoded from the stream."""
    kernels = _kernels()
    rows = np.empty(flips.count, dtype=np.int64)
    cols = np.empty(flips.count, dtype=np.int64)
    if kernels is not None:
        kernels.decode(flips.stream, flips.shape[0], rows, cols)
        return rows, cols
    at, k = 0, 0
    stream = flips.stream
    for row in range(flips.shape[0]):
        count, at = _read(stream, at)
        col = -1
        for _ in range(count):
            gap, at = _read(stream, at)
            col += gap + 1
            rows[k], cols[k] = row, col
            k += 1
    return rows, cols


def _read(stream: np.ndarray, at: int) -> tuple[int, int]:
    value = int(stream[at])
    if value < ESCAPE:
        return value, at + 1
    return int.from_bytes(stream[at + 1:at + 5].tobytes(), "little"), at + 5
