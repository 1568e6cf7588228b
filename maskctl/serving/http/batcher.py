"""Dynamic batching across tasks: concurrent HTTP requests become one mixed-task batch.

Each request's inputs wait in a queue; the first waits at most ``max_wait`` seconds for others,
and a batch closes as soon as ``max_batch`` inputs are gathered. ``MaskedModel.predict_many``
then runs on the compute thread, off the event loop, so health checks and new requests are
answered while a batch computes (and queue up for the next one).

Every torch call of the server (loading included) runs on that one thread (``compute_thread``):
a second thread calling torch starts a second OpenMP team, and with more OpenMP threads than
cores libgomp cuts its spin-waits, which made every batch ~45 % slower on a 2-core machine
(41 -> 60 ms for 8 short texts on MiniLM, measured side by side). A request is never split
between batches, so one bigger than ``max_batch`` runs alone (``predict_many`` cuts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from maskctl.serving.model import MaskedModel


@dataclass
class _Entry:
    requests: list[tuple[str, Any]]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


def compute_thread() -> ThreadPoolExecutor:
    """The one thread that runs every torch call of a server (see the module docstring)."""
    return ThreadPoolExecutor(1, thread_name_prefix="maskctl-compute")


class Batcher:
    """Gathers ``(task, input)`` requests into batches for one ``MaskedModel``."""

    def __init__(self, model: MaskedModel, max_batch: int, max_wait_s: float, compute: ThreadPoolExecutor,
                 metrics=None) -> None:
        self.model, self.max_batch, self.max_wait = model, max_batch, max_wait_s
        self.metrics = metrics
        self.pending: Counter[str] = Counter()  # inputs per task queued or running
        self._queue: asyncio.Queue[_Entry | None] = asyncio.Queue()
        self._worker = compute
        self._loop_task: asyncio.Task | None = None

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish what is queued, then stop the loop."""
        if self._loop_task is not None:
            await self._queue.put(None)
            await self._loop_task
            self._loop_task = None

    async def submit(self, requests: list[tuple[str, Any]]) -> list[Any]:
        """Results (or ``RequestError``) for ``requests``, in order, once their batch ran."""
        future = asyncio.get_running_loop().create_future()
        self.pending.update(name for name, _ in requests)
        await self._queue.put(_Entry(requests, future))
        if self.metrics:
            self.metrics.queue_depth.set(self._queue.qsize())
        return await future

    async def drained(self, task: str) -> None:
        """Wait until no input of ``task`` is queued or running (before unloading it)."""
        while self.pending.get(task):
            await asyncio.sleep(0.01)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch, size = [first], len(first.requests)
            deadline = first.queued + self.max_wait
            while size < self.max_batch:
                try:
                    entry = (self._queue.get_nowait() if self._queue.qsize() else
                             await asyncio.wait_for(self._queue.get(), max(0.0, deadline - time.perf_counter())))
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if entry is None:
                    stopping = True
                    break
                if size + len(entry.requests) > self.max_batch:
                    await self._run(loop, batch)  # it would not fit: this batch goes, it starts the next
                    batch, size = [entry], len(entry.requests)
                    deadline = entry.queued + self.max_wait
                    continue
                batch.append(entry)
                size += len(entry.requests)
            await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry]) -> None:
        requests = [r for entry in batch for r in entry.requests]
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._worker, self.model.predict_many, requests, self.max_batch)
        except Exception as exc:  # a bug: every waiting request learns of it, the loop goes on
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            results = None
        finally:
            self.pending.subtract(name for name, _ in requests)
            self.pending += Counter()  # drop tasks at zero
        if self.metrics:
            self.metrics.observe_batch(requests, time.perf_counter() - started, self._queue.qsize())
        if results is None:
            return
        offset = 0
        for entry in batch:
            with contextlib.suppress(asyncio.InvalidStateError):  # the client went away
                entry.future.set_result(results[offset:offset + len(entry.requests)])
            offset += len(entry.requests)
