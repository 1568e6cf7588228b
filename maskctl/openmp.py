"""How a serving process waits on OpenMP: passively.

torch runs its dense products on an OpenMP team whose workers, by libgomp's default, spin for a
while after each parallel region waiting for the next one. A serving process runs more threads
than that team: the served masks' kernel splits a mixed batch's terms over as many threads as
torch uses (``masking/kernels``), and the HTTP side tokenises and answers. Spinning workers hold
the cores those threads need, so the kernel's second thread gained nothing at all (BENCHMARKS.md,
"Serving many tasks"). With ``OMP_WAIT_POLICY=PASSIVE`` the workers sleep at once; dense
throughput measured the same. libgomp reads the variable when torch loads it, so it must be set
before ``import torch``: ``maskctl serve`` does (unless the user set it); a program using
``MaskedModel`` sets it itself. Without it the kernel runs on one thread.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "OMP_WAIT_POLICY"


def prefer_passive_waits() -> bool:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set already; whether it can still take effect (torch
    not imported yet)."""
    os.environ.setdefault(VARIABLE, "PASSIVE")
    return "torch" not in sys.modules


def waits_passively() -> bool:
    """Whether this process's OpenMP workers sleep between parallel regions."""
    return os.environ.get(VARIABLE, "").strip().upper() == "PASSIVE"
