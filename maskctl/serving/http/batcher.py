"""Dynamic batching across tasks and clients: concurrent HTTP requests become mixed-task batches.

Each request's inputs wait in a queue; the first waits at most ``max_wait`` seconds for others.
A batch closes at ``max_batch`` inputs or when the next input would pass ``max_tokens`` (rows x
length of each encoded input, ``Kind.cost``: a padded batch's compute). A request larger than one batch is
*split*: each batch takes one input from each waiting request in turn, and a request not
finished goes to the back of the line, so a 1-input request rides in the next batch beside a
10,000-input one instead of waiting for all of it (text-embeddings-inference's fairness). Inputs
arrive encoded (``MaskedModel.encode``, as the request came in); ``MaskedModel.run`` runs on the
compute thread, off the event loop, so health checks and new requests are answered while a
batch computes.

Every torch call of the server (loading included) runs on that one thread (``compute_thread``):
a second thread calling torch starts a second OpenMP team, and with more OpenMP threads than
cores libgomp cuts its spin-waits, which made every batch markedly slower on a 2-core machine
(BENCHMARKS.md, "Serving over HTTP").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from maskctl.serving.model import MaskedModel


@dataclass
class Timing:
    """Where a request's time went (ms), as TEI's ``x-queue-time`` / ``x-inference-time`` /
    ``x-total-time`` headers report it: waiting for its first batch, in batches, in all."""

    queue_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0

    def headers(self) -> dict[str, str]:
        return {
            "x-queue-time": f"{self.queue_ms:.2f}",
            "x-inference-time": f"{self.inference_ms:.2f}",
            "x-total-time": f"{self.total_ms:.2f}",
        }


@dataclass
class _Entry:
    requests: list[tuple[str, Any]]
    costs: list[int]
    future: asyncio.Future
    results: list[Any] = field(default_factory=list)
    taken: int = 0  # inputs handed to batches so far
    answered: int = 0
    queued: float = field(default_factory=time.perf_counter)
    started: float | None = None
    inference: float = 0.0


def compute_thread() -> ThreadPoolExecutor:
    """The one thread that runs every torch call of a server (see the module docstring)."""
    return ThreadPoolExecutor(1, thread_name_prefix="maskctl-compute")


class Batcher:
    """Gathers ``(task, input)`` requests into batches for one ``MaskedModel``."""

    def __init__(
        self,
        model: MaskedModel,
        max_batch: int,
        max_wait_s: float,
        compute: ThreadPoolExecutor,
        metrics=None,
        max_tokens: int | None = None,
    ) -> None:
        self.model, self.max_batch, self.max_wait, self.max_tokens = model, max_batch, max_wait_s, max_tokens
        self.metrics = metrics
        self.pending: Counter[str] = Counter()  # inputs per task queued or running
        self._line: deque[_Entry] = deque()  # requests with inputs not yet in a batch, in turn
        self._arrived = asyncio.Event()
        self._stopping = False
        self._worker = compute
        self._loop_task: asyncio.Task | None = None

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self, timeout: float | None = None) -> None:
        """Finish what is queued within ``timeout`` seconds (all of it when None), then stop the
        loop; requests still waiting then fail (``BatcherStopped``), so shutdown is bounded
        whatever is queued. A batch computing on the compute thread runs to its end there."""
        if self._loop_task is None:
            return
        self._stopping = True
        self._arrived.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._loop_task), timeout)
        except asyncio.TimeoutError:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            for entry in list(self._line):
                self._fail(entry, BatcherStopped("the server stopped before this request was answered"))
        self._loop_task = None

    @property
    def waiting(self) -> int:
        """Requests with inputs not yet in a batch."""
        return len(self._line)

    async def submit(self, requests: list[tuple[str, Any]], costs: list[int] | None = None) -> tuple[list[Any], Timing]:
        """Results (or ``RequestError``) for ``requests`` (task name, ``Encoded``), in order, once
        their batches ran; ``costs`` are the inputs' tokens for the token budget. No requests:
        answered at once (an entry with nothing to take would never leave the line). Cancelled
        (the client went away, or shutdown): its inputs not yet in a batch leave the line."""
        if not requests:
            return [], Timing()
        entry = _Entry(
            list(requests),
            list(costs) if costs is not None else [1] * len(requests),
            asyncio.get_running_loop().create_future(),
            [None] * len(requests),
        )
        self.pending.update(name for name, _ in requests)
        self._line.append(entry)
        self._arrived.set()
        if self.metrics:
            self.metrics.queue_depth.set(len(self._line))
        try:
            results = await entry.future
        except asyncio.CancelledError:
            self._fail(entry, None)
            raise
        done = time.perf_counter()
        return results, Timing(
            ((entry.started or done) - entry.queued) * 1000, entry.inference * 1000, (done - entry.queued) * 1000
        )

    async def drained(self, task: str) -> None:
        """Wait until no input of ``task`` is queued or running (before unloading it)."""
        while self.pending.get(task):
            await asyncio.sleep(0.01)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._line:
                if self._stopping:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            first = self._line[0]
            if first.taken == 0:  # a fresh request waits a little for company
                deadline = first.queued + self.max_wait
                while self._queued_inputs() < self.max_batch and (left := deadline - time.perf_counter()) > 0:
                    self._arrived.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._arrived.wait(), left)
            batch = self._take()  # empty when the request that waited for company was cancelled meanwhile
            if batch:
                await self._run(loop, batch)

    def _queued_inputs(self) -> int:
        return sum(len(e.requests) - e.taken for e in self._line)

    def _take(self) -> list[tuple[_Entry, int, int]]:
        """The next batch: one input from each request in line in turn (so every waiting client
        gets its share of each batch), until the batch is full or the next input would pass the
        token budget; requests not finished go to the back of the line."""
        entries = list(self._line)
        stops = [e.taken for e in entries]
        size, longest = 0, 0
        while size < self.max_batch:
            progressed = False
            for i, entry in enumerate(entries):
                if stops[i] >= len(entry.requests) or size >= self.max_batch:
                    continue
                cost = entry.costs[stops[i]]
                if self.max_tokens and size and (size + 1) * max(longest, cost) > self.max_tokens:
                    break  # the token budget: a padded batch's rows x longest row
                stops[i], size, longest, progressed = stops[i] + 1, size + 1, max(longest, cost), True
            else:
                if progressed:
                    continue
            break
        batch = [(e, e.taken, stop) for e, stop in zip(entries, stops) if stop > e.taken]
        for entry, _, stop in batch:
            entry.taken = stop
        waiting = [e for e in entries if e.taken == 0]
        self._line = deque(waiting + [e for e in entries if 0 < e.taken < len(e.requests)])
        return batch

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[_Entry, int, int]]) -> None:
        requests = [r for entry, start, stop in batch for r in entry.requests[start:stop]]
        started = time.perf_counter()
        for entry, _, _ in batch:
            entry.started = entry.started or started
        try:
            results = await loop.run_in_executor(self._worker, self.model.run, [e for _, e in requests], len(requests))
        except Exception as exc:  # noqa: BLE001 - a bug: every waiting request learns of it, the loop goes on
            for entry, _, _ in batch:
                self._fail(entry, exc)
            results = None
        except asyncio.CancelledError:  # stopped past its deadline: the batch's requests are not answered
            for entry, _, _ in batch:
                self._fail(entry, BatcherStopped("the server stopped before this request was answered"))
            raise
        finally:
            self.pending.subtract(name for name, _ in requests)
            self.pending += Counter()  # drop tasks at zero
        seconds = time.perf_counter() - started
        if self.metrics:
            self.metrics.observe_batch(requests, seconds, len(self._line))
        if results is None:
            return
        offset = 0
        for entry, start, stop in batch:
            entry.results[start:stop] = results[offset : offset + stop - start]
            entry.inference += seconds
            entry.answered += stop - start
            offset += stop - start
            if entry.answered == len(entry.requests):
                with contextlib.suppress(asyncio.InvalidStateError):  # the client went away
                    entry.future.set_result(entry.results)

    def _fail(self, entry: _Entry, exc: Exception | None) -> None:
        """Take ``entry`` out of the line (its inputs not yet in a batch will not run) and fail
        it with ``exc`` (None: it was cancelled)."""
        with contextlib.suppress(ValueError):
            self._line.remove(entry)
        left = entry.requests[entry.taken :]
        self.pending.subtract(name for name, _ in left)
        self.pending += Counter()  # drop tasks at zero
        entry.taken = len(entry.requests)
        if exc is not None and not entry.future.done():
            entry.future.set_exception(exc)
        if self.metrics:
            self.metrics.queue_depth.set(len(self._line))


class BatcherStopped(RuntimeError):
    """A request still queued when the server stopped."""
