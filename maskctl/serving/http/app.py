"""The HTTP API over one ``MaskedModel``: FastAPI routes, error bodies, and the app's lifespan.

FastAPI (on Starlette, under uvicorn) because its pydantic models validate requests with
field-level messages and write the OpenAPI page from the same declarations, and it is the stack
vLLM's OpenAI-compatible server runs on. Every error is ``{"error": {"code", "message",
"fix"}}`` with its HTTP status; no traceback ever reaches a client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from maskctl.errors import DuplicateTask, MaskctlError
from maskctl.serving.http import error_shapes, schemas
from maskctl.serving.http.answers import Answerer, ApiError, json_response, named, validation_message
from maskctl.serving.http.answers import json_body as _json
from maskctl.serving.http.batcher import Batcher
from maskctl.serving.http.folder import BundleFolder, NotInFolder
from maskctl.serving.http.guard import Guard
from maskctl.serving.http.metrics import ServerMetrics
from maskctl.serving.http.oip import add_oip_routes
from maskctl.serving.http.settings import ServeSettings
from maskctl.serving.http.tei import add_tei_routes
from maskctl.serving.model import MaskedModel
from maskctl.serving.results import RequestError
from maskctl.version import __version__

log = logging.getLogger("maskctl.serve")
ERRORS = {code: {"model": schemas.ErrorResponse} for code in (400, 401, 404, 413, 429)}


@dataclass
class ServerState:
    """What one server holds: settings, the model, and the parts built around it at startup."""

    settings: ServeSettings
    model: MaskedModel
    compute: ThreadPoolExecutor  # the one thread that runs torch (batcher.compute_thread)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    batcher: Batcher | None = None
    folder: BundleFolder | None = None
    answers: Answerer | None = None
    stopping: bool = False  # set on SIGTERM: readiness fails while in-flight requests finish
    drain_until: float | None = None  # time.monotonic() by which a SIGTERM's shutdown ends

    def begin_drain(self) -> None:
        """SIGTERM: readiness fails from now on, and shutdown ends within ``--drain-seconds``."""
        if not self.stopping:
            self.stopping = True
            self.drain_until = time.monotonic() + self.settings.drain_seconds

    def drain_left(self) -> float:
        """Seconds left of the drain (all of ``--drain-seconds`` when no SIGTERM started it)."""
        if self.drain_until is None:
            return self.settings.drain_seconds
        return max(0.0, self.drain_until - time.monotonic())

    def close(self, timeout: float | None = None) -> None:
        """Put the base weights back and stop the compute thread (after the server stopped). A
        batch still computing after ``timeout`` seconds is not waited for: the process is ending."""
        done = self.compute.submit(self.model.close)
        try:
            done.result(timeout)
        except concurrent.futures.TimeoutError:
            log.warning("a batch was still computing at exit; not waiting for it")
            self.compute.shutdown(wait=False, cancel_futures=True)
            return
        self.compute.shutdown(wait=True)

    def start(self) -> None:
        """Inside the event loop: the batcher, and the folder's link to it."""
        s = self.settings
        self.batcher = Batcher(
            self.model, s.max_batch, s.max_wait_ms / 1000, self.compute, self.metrics, s.max_batch_tokens
        )
        self.batcher.start()
        self.answers = Answerer(self)
        if self.folder is None:
            self.folder = BundleFolder(self.model, s.folder, self.compute, self.metrics)
        self.folder.batcher = self.batcher
        self.metrics.tasks_loaded.set(len(self.model.tasks))


def create_app(state: ServerState) -> Any:
    """The ASGI app (FastAPI inside the key/size/metrics guard, inside CORS when
    ``--cors-allow-origin`` is given) for ``state``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        watcher = None
        if state.settings.folder and state.settings.watch_seconds > 0:
            watcher = asyncio.get_running_loop().create_task(state.folder.watch(state.settings.watch_seconds))
        yield
        if watcher:
            watcher.cancel()
        await state.batcher.stop(state.drain_left())  # what is still queued fails once the drain is over

    app = FastAPI(
        title="maskctl",
        version=__version__,
        lifespan=lifespan,
        description="Every served task answered from one base model: one binary mask per task, "
        "requests of many tasks batched together.",
    )
    app.state.maskctl = state
    _errors(app)
    _probes(app, state)
    _tasks(app, state)
    add_tei_routes(app, state)
    add_oip_routes(app, state)
    if state.settings.admin:
        _admin(app, state)
    s = state.settings
    guarded = Guard(app, s.api_key, s.max_body_kb * 1024, state.metrics, s.max_header_kb * 1024)
    if not s.cors_allow_origin:
        return guarded
    # Outside the guard: a browser's preflight carries no API key, and 401s need CORS headers too.
    return CORSMiddleware(
        guarded,
        allow_origins=s.cors_allow_origin,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Maskctl-Task"],
        expose_headers=["x-queue-time", "x-inference-time", "x-total-time", "Retry-After"],
    )


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_shapes.error_response(request, exc.code, exc.message, exc.fix, exc.tasks, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        content_type = request.headers.get("content-type", "")
        if request.method in ("POST", "PUT") and "json" not in content_type.lower():
            message = f"the request body was sent as {content_type.split(';')[0] or 'no content type'}, not as JSON"
            return error_shapes.error_response(
                request,
                400,
                message,
                "send the header 'Content-Type: application/json' "
                "(curl: -H 'Content-Type: application/json', or --json)",
            )
        message = validation_message(exc.errors())
        hint = {
            "/v1/predict": '{"requests": [{"task": "<task>", "input": "<text>"}, ...]}',
            "/v1/admin/bundles": '{"bundle": "<file>.bundle"}',
        }.get(request.url.path, '{"inputs": ["<text>", ...]}')
        return error_shapes.error_response(
            request, 400, message, f"send a JSON body like {error_shapes.hint(request, hint)}"
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        fix = "see /docs for the endpoints" if exc.status_code in (404, 405) else None
        return error_shapes.error_response(request, exc.status_code, str(exc.detail), fix)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        return error_shapes.error_response(request, 500, "internal error", "the server log has the details")


def _probes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health", response_model=schemas.Health, tags=["probes"])
    async def health() -> Response:
        """Liveness: the process answers (no API key needed)."""
        return _json({"status": "ok", "tasks": len(state.model.tasks)})

    @app.get("/ready", response_model=schemas.Health, tags=["probes"], responses={503: {"model": schemas.Health}})
    async def ready() -> Response:
        """Readiness: at least one task is served and the server is not shutting down."""
        status = "draining" if state.stopping else "ready" if state.model.tasks else "no tasks"
        return _json({"status": status, "tasks": len(state.model.tasks)}, 200 if status == "ready" else 503)

    @app.get("/metrics", tags=["probes"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format: requests, latency, batch sizes, inputs per task."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _tasks(app: FastAPI, state: ServerState) -> None:
    def answers() -> Answerer:
        return state.answers

    @app.get("/v1/tasks", response_model=schemas.TaskList, tags=["tasks"], responses=ERRORS)
    async def list_tasks() -> Response:
        """Every served task: kind, labels, base model, the bundle's dev metrics, and a reload
        that failed (the last good version goes on serving)."""
        return _json({"tasks": [_info(state, name) for name in sorted(state.folder.serving())]})

    @app.get("/v1/tasks/{name}", response_model=schemas.TaskInfo, tags=["tasks"], responses=ERRORS)
    async def get_task(name: str) -> Response:
        answers().served(name)
        return _json(_info(state, name))

    @app.post(
        "/v1/tasks/{name}/predict", response_model=schemas.TaskPredictResponse, tags=["predict"], responses=ERRORS
    )
    async def predict_task(name: str, body: schemas.TaskPredictRequest, request: Request) -> Response:
        """Predictions of one task for a list of inputs (batched with other requests)."""
        a = answers()
        a.served(name)
        requests = [(name, item, f"inputs[{i}]") for i, item in enumerate(body.inputs)]
        with a.admit(len(requests)):
            results, timing = await a.answer(requests, request.receive)
        a.first_error(results)
        return await json_response({"task": name, "predictions": results}, a.heavy(requests), timing.headers())

    @app.post("/v1/predict", response_model=schemas.MixedPredictResponse, tags=["predict"], responses=ERRORS)
    async def predict_mixed(body: schemas.MixedPredictRequest, request: Request) -> Response:
        """Requests of any served tasks, answered together in mixed-task batches. A request with
        ``tasks`` instead of ``task`` fans its input out to each of them (one result each)."""
        a = answers()
        pairs = [(task, r.input, i) for i, r in enumerate(body.requests) for task in r.fanned()]
        serving = state.folder.serving()
        unknown = sorted({task for task, _, _ in pairs} - set(serving))
        if unknown:
            raise ApiError(
                404,
                f"task{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                f"{'are' if len(unknown) > 1 else 'is'} not served",
                "use one of the served tasks",
                serving,
            )
        requests = [(task, item, f"requests[{i}].input") for task, item, i in pairs]
        with a.admit(len(requests)):
            results, timing = await a.answer(requests, request.receive)
        out = [
            {"task": task, "error": _error_detail(res, state)}
            if isinstance(res, RequestError)
            else {"task": task, "prediction": res}
            for (task, _, _), res in zip(pairs, results)
        ]
        return await json_response({"results": out}, a.heavy(requests), timing.headers())


def _admin(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/admin/bundles",
        status_code=201,
        response_model=schemas.TaskInfo,
        tags=["admin"],
        responses={**ERRORS, 409: {"model": schemas.ErrorResponse}, 422: {"model": schemas.ErrorResponse}},
    )
    async def load_bundle(body: schemas.LoadRequest) -> Response:
        """Load a bundle file of the served folder (by file name)."""
        try:
            path = state.folder.resolve(body.bundle)
        except NotInFolder as exc:
            raise ApiError(404, exc.message, exc.fix) from None
        except MaskctlError as exc:
            raise ApiError(400, exc.message, exc.fix) from None
        if path in state.folder.loaded:
            raise ApiError(
                409,
                f"{body.bundle} is already served as task {state.folder.loaded[path]!r}",
                "unload that task first to reload it",
            )
        try:
            name = await state.folder.load(path)
        except DuplicateTask as exc:
            raise ApiError(409, exc.message, exc.fix) from None
        except MaskctlError as exc:
            raise ApiError(422, exc.message, exc.fix) from None
        return _json(_info(state, name), 201)

    @app.delete("/v1/admin/tasks/{name}", tags=["admin"], responses=ERRORS)
    async def unload_task(name: str) -> Response:
        """Stop serving a task once its queued requests are answered."""
        if name not in state.model.tasks:
            raise ApiError(404, f"task {name!r} is not served", "use one of the served tasks", state.model.tasks)
        await state.folder.unload(name)
        return _json({"unloaded": name})


def _error_detail(error: RequestError, state: ServerState) -> dict[str, Any]:
    """A failed input of a mixed request, in its place among the results."""
    if error.status == 404:  # unloaded while it waited
        return {
            "code": 404,
            "message": error.message,
            "fix": f"use one of the served tasks: {named(state.folder.serving())}",
        }
    return {"code": error.status, "message": error.message, "fix": error.fix}


def _info(state: ServerState, name: str) -> dict[str, Any]:
    info = state.model.describe(name)
    path = state.folder.path_of(name) if state.folder else None
    failed = state.folder.reload_failed.get(path) if path else None
    return {
        **info,
        "bundle": path.name if path else None,
        "pinned": name in state.settings.pin,
        **({"reload_error": failed} if failed else {}),
    }
