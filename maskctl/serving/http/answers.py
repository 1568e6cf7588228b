"""What every prediction route shares, whatever JSON shape it speaks (``/v1``, TEI, OIP v2):
admission (requests at once, inputs per request), each input checked before it joins a batch,
the batcher, and the counts. A route is then a thin translation of its shape into ``(task,
input)`` pairs and of the results back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from fastapi.responses import Response

from maskctl.serving.costs import TokenCounter
from maskctl.serving.http.batcher import Timing
from maskctl.serving.results import RequestError, example_from_input
from maskctl.tasks.task import Task

INLINE_COUNT = 64  # inputs checked and counted on the event loop; more, on a worker thread


def json_body(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; result dataclasses are written as their fields."""
    return Response(json.dumps(payload, default=vars).encode(), status, headers, media_type="application/json")


async def json_response(payload: Any, items: int, headers: dict[str, str] | None = None) -> Response:
    """``json_body`` for an answer of ``items`` predictions: a large one is encoded on a worker
    thread, so the event loop goes on serving other clients meanwhile (10,000 take ~0.3 s)."""
    if items <= INLINE_COUNT:
        return json_body(payload, headers=headers)
    return await asyncio.to_thread(json_body, payload, 200, headers)


class ApiError(Exception):
    """An error answered with its HTTP status and a JSON body (in the route's own shape)."""

    def __init__(self, code: int, message: str, fix: str | None = None, tasks: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fix, self.tasks, self.headers = code, message, fix, tasks, headers


class Answerer:
    """Admits, checks and answers prediction requests for one server (``ServerState``)."""

    def __init__(self, state) -> None:
        self.state = state
        self.counter = TokenCounter(state.model)
        self.in_flight = 0

    def served(self, name: str) -> Task:
        serving = self.state.folder.serving()
        if name not in serving:
            raise ApiError(404, f"task {name!r} is not served", "use one of the served tasks", serving)
        return self.state.model.task(name)

    @contextlib.contextmanager
    def admit(self, inputs: int) -> Iterator[None]:
        """One request of ``inputs`` inputs, within ``--max-client-batch-size`` and
        ``--max-concurrent-requests``: 413 or 429 (with ``Retry-After``) past them."""
        s, metrics = self.state.settings, self.state.metrics
        if inputs > s.max_client_batch_size:
            metrics.rejected.labels("too_many_inputs").inc()
            raise ApiError(413, f"{inputs} inputs in one request; this server takes at most "
                           f"{s.max_client_batch_size}", f"send at most {s.max_client_batch_size} inputs per "
                           "request, or start the server with a larger --max-client-batch-size")
        if self.in_flight >= s.max_concurrent_requests:
            metrics.rejected.labels("overloaded").inc()
            raise ApiError(429, f"the server is answering {s.max_concurrent_requests} requests already",
                           "retry after the time in Retry-After, or add replicas", headers={"Retry-After": "1"})
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def example(self, name: str, item: Any, where: str) -> dict[str, Any]:
        """The canonical example of one input, or a 400 naming where it is in the request."""
        task = self.served(name)
        try:
            return example_from_input(task, item)
        except ValueError as exc:
            self.state.metrics.input_errors.labels(name).inc()
            raise ApiError(400, f"{where}: {name} {exc}", task.kind.input_hint) from None

    async def answer(self, requests: list[tuple[str, Any, str]]) -> tuple[list, Timing]:
        """Results for ``(task, input, where in the request)`` triples (``RequestError`` where an
        input failed alone) and where the time went. Each input is checked (a 400 naming
        ``where``) and its tokens counted before anything joins a batch; for a large request that
        work runs on a worker thread, so the event loop goes on reading other clients' requests."""
        def prepare() -> list[int]:
            examples = [(name, self.example(name, item, where)) for name, item, where in requests]
            return self.counter.costs(examples)

        costs = prepare() if len(requests) <= INLINE_COUNT else await asyncio.to_thread(prepare)
        pairs = [(name, item) for name, item, _ in requests]
        results, timing = await self.state.batcher.submit(pairs, costs)
        ok = Counter(name for (name, _), r in zip(pairs, results) if not isinstance(r, RequestError))
        self.state.metrics.count_inputs(ok, Counter(name for name, _ in pairs) - ok)
        return results, timing

    def first_error(self, results: list[Any]) -> None:
        """Raise the first failed input of a one-task request as its status, naming its index."""
        index, failed = next(((i, r) for i, r in enumerate(results) if isinstance(r, RequestError)), (0, None))
        if failed is not None:  # unloaded while waiting (404), or an input the tokenizer refused (400)
            where = "" if failed.status == 404 else f"inputs[{index}]: "
            raise ApiError(failed.status, where + failed.message, failed.fix,
                           self.state.folder.serving() if failed.status == 404 else None)
