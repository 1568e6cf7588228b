"""Memory a serving process hands back: loading a task allocates and frees tens of MB of
temporaries (decoded masks, indices), which glibc would otherwise keep in its heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache


def release_freed_memory() -> None:
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``; a no-op elsewhere).

    Why: loading a task allocates and frees tens of MB of temporaries (decoded masks, indices).
    glibc keeps such freed blocks in its heap after its mmap threshold has grown, so without a
    trim the RSS of a process that loads hundreds of tasks grows far beyond what it holds
    (BENCHMARKS.md, "Serving many tasks").
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to do
        return None
