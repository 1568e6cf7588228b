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

from maskctl.serving.collate import Encoded
from maskctl.serving.http.batcher import Timing
from maskctl.serving.results import RequestError
from maskctl.tasks.task import Task

# A request of up to this many inputs and characters is checked, counted and answered on the event
# loop; a larger one on a worker thread, so the loop goes on serving other clients meanwhile.
INLINE_COUNT, INLINE_CHARS = 64, 64 * 1024


def json_body(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; result dataclasses are written as their fields."""
    return Response(json.dumps(payload, default=vars).encode(), status, headers, media_type="application/json")


async def json_response(payload: Any, heavy: bool, headers: dict[str, str] | None = None) -> Response:
    """``json_body`` for the answer of a request; that of a ``heavy`` one (``Answerer.heavy``)
    is encoded on a worker thread (thousands of predictions hold the event loop for a visible time)."""
    if not heavy:
        return json_body(payload, headers=headers)
    return await asyncio.to_thread(json_body, payload, 200, headers)


def validation_message(errors: list[dict[str, Any]]) -> str:
    """The first of pydantic's errors as one line naming the field (``requests[0].input: ...``)."""
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    loc = tuple(first.get("loc", ()))
    loc = loc[1:] if loc[:1] == ("body",) else loc  # FastAPI's errors start at the body
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    return f"{where.lstrip('.') or 'body'}: {first.get('msg', 'invalid')}"


def named(tasks: list[str], limit: int = 20) -> str:
    """The served tasks for an error message: all of them, or the first ``limit`` and a count."""
    if not tasks:
        return "none"
    if len(tasks) <= limit:
        return ", ".join(tasks)
    return f"{', '.join(tasks[:limit])} and {len(tasks) - limit} more (GET /v1/tasks lists them all)"


def _chars(item: Any) -> int:
    """Characters of text in one input, however nested (its size before tokenising)."""
    if isinstance(item, str):
        return len(item)
    if isinstance(item, dict):
        return sum(_chars(v) for v in item.values())
    if isinstance(item, (list, tuple)):
        return sum(_chars(v) for v in item)
    return 0


class ApiError(Exception):
    """An error answered with its HTTP status and a JSON body (in the route's own shape)."""

    def __init__(
        self,
        code: int,
        message: str,
        fix: str | None = None,
        tasks: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.fix, self.tasks, self.headers = code, message, fix, tasks, headers


async def until_gone(work, receive=None) -> Any:
    """Await ``work``, or cancel it when the client of ``receive`` (an ASGI channel whose body
    was read already) disconnects first: raises ``ApiError`` 499, as nginx logs such a request.
    Why: uvicorn does not cancel a request whose client left, and a request waiting for a batch
    would otherwise keep its concurrency slot and its place in line until answered."""
    if receive is None:
        return await work
    task, gone = asyncio.ensure_future(work), asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ApiError(499, "the client closed the connection before the answer")
    return task.result()


async def _disconnected(receive) -> None:
    for _ in range(3):  # after the body, a server's channel yields nothing but the disconnect
        if (await receive())["type"] == "http.disconnect":
            return
    await asyncio.Event().wait()  # a channel that never says: never gone


class Answerer:
    """Admits, checks and answers prediction requests for one server (``ServerState``)."""

    def __init__(self, state) -> None:
        self.state = state
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
            raise ApiError(
                413,
                f"{inputs} inputs in one request; this server takes at most {s.max_client_batch_size}",
                f"send at most {s.max_client_batch_size} inputs per "
                "request, or start the server with a larger --max-client-batch-size",
            )
        if self.in_flight >= s.max_concurrent_requests:
            metrics.rejected.labels("overloaded").inc()
            raise ApiError(
                429,
                f"the server is answering {s.max_concurrent_requests} requests already",
                "retry after the time in Retry-After, or add replicas",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def encode(self, requests: list[tuple[str, Any, str]]) -> list[Encoded | RequestError]:
        """Each input checked against its task's kind and tokenised, once, before it joins a
        batch (``MaskedModel.encode``): the first that does not fit its kind is a 400 naming
        where it is in the request; one the tokenizer refused stays a ``RequestError`` in its
        place (it fails alone)."""
        for name, _, _ in requests:
            self.served(name)
        encoded = self.state.model.encode([(name, item) for name, item, _ in requests])
        for (name, _, where), one in zip(requests, encoded):
            if isinstance(one, RequestError):
                self.state.metrics.input_errors.labels(name).inc()
                if one.status == 404:  # unloaded meanwhile
                    raise ApiError(404, one.message, "use one of the served tasks", self.state.folder.serving())
                if one.stage == "input":
                    raise ApiError(400, f"{where}: {one.message}", one.fix)
        return encoded

    async def answer(self, requests: list[tuple[str, Any, str]], receive=None) -> tuple[list, Timing]:
        """Results for ``(task, input, where in the request)`` triples (``RequestError`` where an
        input failed alone) and where the time went. Each input is checked (a 400 naming
        ``where``) and tokenised before anything joins a batch, and its tokens are its cost in
        the batcher's budget; for a large request that work runs on a worker thread, so the event
        loop goes on reading other clients' requests. ``receive`` is the request's ASGI channel:
        if its client goes away before the answer, the request leaves the batcher at once
        (``until_gone``) rather than hold its place."""
        encoded = await asyncio.to_thread(self.encode, requests) if self.heavy(requests) else self.encode(requests)
        results: list[Any] = list(encoded)
        todo = [i for i, one in enumerate(encoded) if isinstance(one, Encoded)]
        timing = Timing()
        if todo:
            batch = [(requests[i][0], encoded[i]) for i in todo]
            answered, timing = await until_gone(self.state.batcher.submit(batch, [e.tokens for _, e in batch]), receive)
            for i, result in zip(todo, answered):
                results[i] = result
        pairs = [(name, item) for name, item, _ in requests]
        ok = Counter(name for (name, _), r in zip(pairs, results) if not isinstance(r, RequestError))
        self.state.metrics.count_inputs(ok, Counter(name for name, _ in pairs) - ok)
        return results, timing

    @staticmethod
    def heavy(requests: list[tuple[str, Any, str]]) -> bool:
        """Whether a request's checks, tokenising and answer run off the event loop: more
        than ``INLINE_COUNT`` inputs, or more than ``INLINE_CHARS`` characters of text (one long
        text tokenised on the loop kept ``/health`` waiting: BENCHMARKS.md, one very long input)."""
        if len(requests) > INLINE_COUNT:
            return True
        return sum(_chars(item) for _, item, _ in requests) > INLINE_CHARS

    def first_error(self, results: list[Any]) -> None:
        """Raise the first failed input of a one-task request as its status, naming its index."""
        index, failed = next(((i, r) for i, r in enumerate(results) if isinstance(r, RequestError)), (0, None))
        if failed is not None:  # unloaded while waiting (404), or an input the tokenizer refused (400)
            if failed.status == 404:
                raise ApiError(404, failed.message, "use one of the served tasks", self.state.folder.serving())
            raise ApiError(failed.status, f"inputs[{index}]: {failed.message}", failed.fix)
