"""Memory for thousands of served tasks: what each loaded task keeps, and the bounded cache of
CSR corrections that mixed batches use.

With the compiled kernel (``masking.flips``, CPU float32) a loaded task holds its encoder
layers as **flipped positions only** (``serving.tasks.ServedTask.flips``: ~1.1 bytes per flip, about 1.4×
its coded masks) and drops their coded form; the mask is ``reference XOR flips`` when a
single-task run merges it. While ``CorrectionCache`` has room, a task's first mixed batch also
builds CSR matrices from its flips (no decode: values gathered from the weights; MKL's product
is faster than the kernel on short groups) and keeps them; tasks that find the cache full run
from their flips through the kernel, and nothing is evicted for them, so no task churns.
``cache_mb=0`` holds every task in the smallest form.

Otherwise (no numba, ``MASKCTL_KERNEL=torch``, CUDA) a task keeps its masks *coded*, as the
bundle stores them (``CodedMasks``: well under 1 bit per masked weight), plus its small head,
and a mixed batch needs its corrections decoded (CSR: int32 indices + float32 values, ~2.9 MB
for MiniLM) into the cache, least recently used first out once it passes its bound in MB; an
evicted task is decoded again on its next request (~50-150 ms for MiniLM); the tasks of the
batch being computed are never evicted. Tasks trained with the same seed share one dense copy
of the masked weights under their initial mask (the reference of ``masking.mixed``), so their
corrections hold only the bits training flipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import sys
from collections import OrderedDict
from collections.abc import Callable

from maskctl.bundle.format import CodedMasks
from maskctl.masking.flips import pack_flips
from maskctl.masking.mixed import correction_bytes
from maskctl.serving.tasks import Corrections


def hold_flips(coded: CodedMasks, corrections: Corrections, inner: dict[str, str]
               ) -> tuple[CodedMasks, Corrections | None]:
    """What a task loaded with ``corrections`` keeps: when every layer's term is flips (the
    kernel's form), those flips packed into one mapping and its coded masks without the encoder
    layers (``inner``: bundle name -> encoder name); else its coded masks as read, and None."""
    if not corrections or any(c.flips is None for c in corrections.values()):
        return coded, None
    packed = pack_flips({n: c.flips for n, c in corrections.items()})
    held = {n: dataclasses.replace(c, flips=packed[n]) for n, c in corrections.items()}
    return coded.without(inner), held


class CorrectionCache:
    """Decoded corrections per task, least recently used evicted past ``limit_bytes``."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._items: OrderedDict[str, Corrections] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.bytes = 0
        self.misses = 0
        self.always: set[str] = set()  # pinned for good (``serve --pin``): never evicted

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str, build: Callable[[], Corrections], pinned: frozenset[str] = frozenset()) -> Corrections:
        """The corrections of ``name``, built on a miss; evicts others (not ``pinned``) to fit."""
        if name in self._items:
            self._items.move_to_end(name)
            return self._items[name]
        self.misses += 1
        return self.put(name, build(), pinned)

    def put(self, name: str, value: Corrections, pinned: frozenset[str] = frozenset()) -> Corrections:
        self.drop(name)
        self._items[name] = value
        self._sizes[name] = correction_bytes(value)
        self.bytes += self._sizes[name]
        self.trim(pinned | {name})
        return value

    def trim(self, pinned: frozenset[str] = frozenset()) -> None:
        """Evict least recently used entries (never ``pinned``) until the bound holds."""
        for other in list(self._items):
            if self.bytes <= self.limit_bytes:
                break
            if other not in pinned and other not in self.always:
                self.drop(other)

    def drop(self, name: str) -> None:
        if name in self._items:
            del self._items[name]
            self.bytes -= self._sizes.pop(name)

    def names(self) -> list[str]:
        return list(self._items)


def release_freed_memory() -> None:
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``; a no-op elsewhere).

    Why: loading a task allocates and frees tens of MB of temporaries (decoded masks, indices).
    glibc keeps such freed blocks in its heap after its mmap threshold has grown, so without a
    trim the RSS of a process that loads 300 MiniLM tasks grows ~500 MB beyond what it holds
    (measured: +1,087 MB against 600 MB held; with the trim +608 MB).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to do
        pass
