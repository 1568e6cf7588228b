"""The term of served masks, compiled or in plain PyTorch: one interface over ``Flips``.

``flip_terms.c`` is compiled once when maskctl is installed (``hatch_build.py``, with the C
compiler Python was built with) into ``_flip_terms.so`` beside it, and loaded here with ctypes,
which releases the GIL while it runs. Without it (no compiler at install, a stale build, or
``MASKCTL_KERNEL=torch``), and for tensors it does not handle (CUDA, dtypes other than float32),
the same calls run ``reference.py``: results agree to float32 rounding (the sums are ordered
differently), and the tests compare the two.
"""

from __future__ import annotations

import ctypes
import logging
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch

from maskctl.masking.flips import Flips, Removed
from maskctl.masking.kernels import reference
from maskctl.openmp import waits_passively

LIBRARY = Path(__file__).with_name("_flip_terms.so")
VERSION = 2  # MASKCTL_KERNEL_VERSION in flip_terms.c: a build of another version is not used
log = logging.getLogger(__name__)

_P, _I = ctypes.c_void_p, ctypes.c_int64


@cache
def _library() -> ctypes.CDLL | None:
    if not LIBRARY.exists():
        return None
    try:
        library = ctypes.CDLL(str(LIBRARY))
    except OSError as exc:
        log.warning("the compiled kernel %s does not load (%s); serving uses plain PyTorch", LIBRARY.name, exc)
        return None
    if library.maskctl_kernel_version() != VERSION:
        log.warning(
            "the compiled kernel %s is of another version; serving uses plain PyTorch until maskctl is "
            "reinstalled (pip install -e . / make setup)",
            LIBRARY.name,
        )
        return None
    library.flip_terms.restype = ctypes.c_int
    library.flip_terms.argtypes = [_I, _P, _P, _I, _I, _P, _P, _P, _P, _P, _I]
    library.flips_apply.restype = library.flips_undo.restype = None
    library.flips_apply.argtypes = [_P, _P, _I, _I, _P, _P, _P, _P, _P]
    library.flips_undo.argtypes = [_P, _P, _I, _I, _P, _P, _P, _P]
    return library


def _loaded() -> ctypes.CDLL:
    """The library, once ``handles`` said it runs."""
    library = _library()
    if library is None:
        raise RuntimeError("the compiled kernel is not loaded")
    return library


def compiled_available() -> bool:
    """Whether the compiled kernel is built, loads, and is not switched off."""
    return os.environ.get("MASKCTL_KERNEL", "").lower() not in ("torch", "off", "0", "no") and _library() is not None


def handles(weight: torch.Tensor) -> bool:
    """Whether the compiled kernel runs for this weight (CPU, float32)."""
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and compiled_available()


def default_threads() -> int:
    """Threads for the term: torch's intra-op count where its OpenMP workers wait passively,
    else one (spinning workers hold the other cores: ``maskctl/openmp.py``)."""
    return torch.get_num_threads() if waits_passively() else 1


def add_terms(
    groups: list[tuple[Flips, int, int]],
    weight: torch.Tensor,
    removed: Removed,
    x: torch.Tensor,
    out: torch.Tensor,
    threads: int | None = None,
) -> None:
    """``out[a:b] += x[a:b] Cᵀ`` for every (flips, a, b) of one layer in one call (``x``: rows ×
    in, ``out``: rows × out, both contiguous), the groups shared among ``threads`` threads
    (default: ``default_threads``)."""
    if threads is None:
        threads = default_threads()
    if not handles(weight):
        reference.add_terms(groups, weight, removed, x, out)
        return
    table = np.array([(a, b, f.counts_at, f.gaps_at) for f, a, b in groups], dtype=np.int64)
    rows, cols, values = removed.addresses
    failed = _loaded().flip_terms(
        len(groups),
        table.ctypes.data,
        weight.data_ptr(),
        weight.shape[0],
        weight.shape[1],
        rows,
        cols,
        values,
        x.data_ptr(),
        out.data_ptr(),
        threads,
    )
    if failed:
        raise MemoryError("the flip kernel could not allocate its scratch rows")


def apply(flips: Flips, weight: torch.Tensor, removed: Removed) -> torch.Tensor:
    """Write the task's flips into ``weight`` in place (its exact weight); returns what the
    removes zeroed, for ``undo``."""
    if not handles(weight):
        return reference.apply(flips, weight, removed)
    saved = torch.empty(flips.removes, dtype=torch.float32)
    _loaded().flips_apply(
        flips.counts_at,
        flips.gaps_at,
        weight.shape[0],
        weight.shape[1],
        weight.data_ptr(),
        *removed.addresses,
        saved.data_ptr(),
    )
    return saved


def undo(flips: Flips, weight: torch.Tensor, removed: Removed, saved: torch.Tensor) -> None:
    """``apply`` undone: the weight as it was, bit for bit."""
    if not handles(weight):
        reference.undo(flips, weight, removed, saved)
        return
    _loaded().flips_undo(
        flips.counts_at,
        flips.gaps_at,
        weight.shape[0],
        weight.shape[1],
        weight.data_ptr(),
        *removed.addresses[:2],
        saved.data_ptr(),
    )
