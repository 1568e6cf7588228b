"""The JSON shapes other servers speak, as thin routes over the same batcher (``answers``).

* text-embeddings-inference ``POST /predict`` (and ``/{task}/predict``): ``{"inputs": "text" |
  ["text", "pair"] | [["a"], ["b", "pair"]], "truncate", "raw_scores"}`` answered with the
  labels sorted by score (a list, or a list of lists for a batch), errors as ``{"error",
  "error_type"}``. The task comes from the path, the ``X-Maskctl-Task`` header, or is the only
  classification task served, so a TEI client points at maskctl unchanged.
* The Open Inference Protocol v2 (KServe, Triton): health, server and model metadata, and
  ``POST /v2/models/{task}/infer`` with BYTES input tensors named after the kind's input fields
  (``text`` [, ``text_pair``]; ``context`` + ``endings``), answered with one output tensor per
  field of the kind's result; ``id`` echoed; errors as ``{"error": "..."}``.

Inputs are always cut at the bundle's max length (TEI's ``truncate: true``); ``raw_scores``
(logits) is refused, since served heads answer probabilities.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from maskctl import __version__
from maskctl.serving.http.answers import ApiError, json_response
from maskctl.serving.http.answers import json_body as _json
from maskctl.serving.http.guard import error_body
from maskctl.serving.results import RequestError

TASK_HEADER = "x-maskctl-task"
TEI_PATHS = ("/predict", "/{task}/predict")
TEI_TYPES = {413: "Validation", 429: "Overloaded", 500: "Backend", 503: "Unhealthy"}
OIP_TYPES = {"str": "BYTES", "float": "FP32", "int": "INT64", "bool": "BOOL"}  # result field type -> datatype


def error_response(request: Request, code: int, message: str, fix: str | None = None,
                   tasks: list[str] | None = None, headers: dict[str, str] | None = None) -> Response:
    """An error in the shape of the route that was asked: TEI's, OIP's, or maskctl's own."""
    route = getattr(request.scope.get("route"), "path", "")  # unrouted paths: maskctl's own shape
    text = f"{message} ({fix})" if fix else message
    if route in TEI_PATHS:
        body = json.dumps({"error": text, "error_type": TEI_TYPES.get(code, "Validation")}).encode()
    elif route.startswith("/v2"):
        body = json.dumps({"error": text}).encode()
    else:
        body = error_body(code, message, fix, tasks=tasks)
    return Response(body, code, headers, media_type="application/json")


def hint(request: Request, default: str) -> str:
    """The body a route expects, for the error of a body that does not fit it."""
    route = getattr(request.scope.get("route"), "path", "")
    if route in TEI_PATHS:
        return '{"inputs": "<text>" | ["<text>", "<pair>"] | [["<text>"], ...]}'
    if route.startswith("/v2"):
        return '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["<text>"]}]}'
    return default


class TeiRequest(BaseModel):
    inputs: str | list[str] | list[list[str]] = Field(..., description="A text, a [text, pair] pair, or a batch "
                                                      "of [text] / [text, pair] lists (TEI's shape).")
    truncate: bool = Field(False, description="Accepted; inputs are always cut at the bundle's max length.")
    raw_scores: bool = Field(False, description="Must be false: served heads answer probabilities.")
    truncation_direction: str | None = None


class OipTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class OipOutputRequest(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class OipRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[OipTensor] = Field(..., min_length=1)
    outputs: list[OipOutputRequest] | None = None


def add_routes(app: FastAPI, state) -> None:
    _tei(app, state)
    _oip(app, state)


def _tei(app: FastAPI, state) -> None:
    def pick(request: Request, task: str | None) -> str:
        name = task or request.headers.get(TASK_HEADER)
        if name:
            return name
        serving = [t for t in state.folder.serving() if state.model.task(t).kind.labels_sequences]
        if len(serving) == 1:
            return serving[0]
        raise ApiError(400, "which task? several are served", f"send the header '{TASK_HEADER}: <task>' or POST "
                       "to /<task>/predict", serving)

    async def predict(request: Request, body: TeiRequest, task: str | None = None) -> Response:
        name = pick(request, task)
        a = state.answers
        if not a.served(name).kind.labels_sequences:
            raise ApiError(400, f"task {name!r} is not a classification task", f"use /v1/tasks/{name}/predict")
        if body.raw_scores:
            raise ApiError(400, "raw_scores is not available", "leave raw_scores false: maskctl answers "
                           "probabilities")
        single = isinstance(body.inputs, str) or all(isinstance(x, str) for x in body.inputs)
        items = [body.inputs] if single else body.inputs
        items = [x if isinstance(x, str) else x[0] if len(x) == 1 else x for x in items]
        if any(isinstance(x, list) and len(x) != 2 for x in items):
            raise ApiError(400, "a sequence is a text or a [text, pair] pair", 'e.g. {"inputs": [["a"], ["b", "c"]]}')
        with a.admit(len(items)):
            results, timing = await a.answer([(name, item, f"inputs[{i}]") for i, item in enumerate(items)])
        a.first_error(results)
        ranked = [sorted(({"label": k, "score": v} for k, v in r.probabilities.items()),
                         key=lambda p: -p["score"]) for r in results]
        return await json_response(ranked[0] if single else ranked, len(ranked), timing.headers())

    @app.post("/predict", tags=["text-embeddings-inference"])
    async def tei_predict(request: Request, body: TeiRequest) -> Response:
        """TEI's ``/predict``: the task from ``X-Maskctl-Task``, or the one classification task."""
        return await predict(request, body)

    @app.post("/{task}/predict", tags=["text-embeddings-inference"])
    async def tei_predict_task(task: str, request: Request, body: TeiRequest) -> Response:
        """TEI's ``/predict`` for the task named in the path."""
        return await predict(request, body, task)


def _oip(app: FastAPI, state) -> None:
    def model(name: str):
        if name not in state.folder.serving():
            raise ApiError(404, f"model {name!r} is not served", "GET /v1/tasks lists the served tasks")
        return state.model.task(name)

    @app.get("/v2", tags=["open-inference-protocol"])
    async def server_metadata() -> Response:
        return _json({"name": "maskctl", "version": __version__, "extensions": []})

    @app.get("/v2/health/live", tags=["open-inference-protocol"])
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=["open-inference-protocol"])
    async def ready() -> Response:
        up = bool(state.model.tasks) and not state.stopping
        return _json({"ready": up}, 200 if up else 503)

    @app.get("/v2/models/{name}", tags=["open-inference-protocol"])
    async def model_metadata(name: str) -> Response:
        kind = model(name).kind
        inputs = [{"name": f, "datatype": "BYTES", "shape": [-1] * rank}
                  for f, rank in getattr(kind, "input_fields", {"text": 1}).items()]
        outputs = [{"name": f, "datatype": datatype, "shape": [-1]} for f, datatype in _outputs(kind)]
        return _json({"name": name, "versions": ["1"], "platform": "maskctl", "inputs": inputs, "outputs": outputs,
                      "parameters": {"kind": kind.name, "labels": list(state.model.task(name).labels)}})

    @app.get("/v2/models/{name}/ready", tags=["open-inference-protocol"])
    async def model_ready(name: str) -> Response:
        model(name)
        return _json({"name": name, "ready": True})

    @app.post("/v2/models/{name}/infer", tags=["open-inference-protocol"])
    async def infer(name: str, body: OipRequest) -> Response:
        """One BYTES tensor per input field (``data`` row-major); one output tensor per result field."""
        kind = model(name).kind
        items = _rows(body.inputs, getattr(kind, "input_fields", {"text": 1}))
        a = state.answers
        with a.admit(len(items)):
            results, timing = await a.answer([(name, item, f"row {i}") for i, item in enumerate(items)])
        failed = next((r for r in results if isinstance(r, RequestError)), None)
        if failed is not None:
            raise ApiError(failed.status, failed.message, failed.fix)
        wanted = {o.name for o in body.outputs} if body.outputs else None
        outputs = [_tensor(f, datatype, [getattr(r, f) for r in results]) for f, datatype in _outputs(kind)
                   if wanted is None or f in wanted]
        return await json_response({"model_name": name, "model_version": "1", "id": body.id, "outputs": outputs},
                                   len(results), timing.headers())


def _outputs(kind) -> list[tuple[str, str]]:
    """The output tensors of a kind: its result's fields, lists and dicts as JSON in BYTES."""
    names = (f.type if isinstance(f.type, str) else f.type.__name__ for f in dataclasses.fields(kind.result_type))
    return [(f.name, OIP_TYPES.get(t, "BYTES")) for f, t in zip(dataclasses.fields(kind.result_type), names)]


def _tensor(name: str, datatype: str, values: list[Any]) -> dict[str, Any]:
    data = values if datatype != "BYTES" or all(isinstance(v, str) for v in values) else [json.dumps(v) for v in values]
    return {"name": name, "datatype": datatype, "shape": [len(values)], "data": data}


def _rows(tensors: list[OipTensor], fields: dict[str, int]) -> list[Any]:
    """One input object per row from the request's tensors (``data`` flat or nested)."""
    first = next(iter(fields))
    if len(tensors) == 1 and tensors[0].name not in fields:  # one tensor of any name (KServe's "input-0")
        tensors = [tensors[0].model_copy(update={"name": first})]
    known = {t.name: t for t in tensors}
    unknown = sorted(set(known) - set(fields))
    if unknown or first not in known:
        raise ApiError(400, f"inputs named {sorted(known)}; this model takes {list(fields)}",
                       f"send a BYTES tensor named {first!r} (GET /v2/models/<task> lists them)")
    columns: dict[str, list[Any]] = {}
    for name, t in known.items():
        if t.datatype != "BYTES":
            raise ApiError(400, f"input {name!r} is {t.datatype}", "send text inputs as datatype BYTES")
        flat = _flatten(t.data)
        if not t.shape or any(d < 0 for d in t.shape) or _product(t.shape) != len(flat):
            raise ApiError(400, f"input {name!r}: shape {t.shape} does not hold its {len(flat)} values",
                           "give shape [rows] (or [rows, n] for a list per row) matching data")
        width = _product(t.shape[1:]) if fields[name] == 2 else 1
        columns[name] = [flat[i * width:(i + 1) * width] if fields[name] == 2 else flat[i]
                         for i in range(t.shape[0] if fields[name] == 2 else len(flat))]
    counts = {len(c) for c in columns.values()}
    if len(counts) != 1:
        raise ApiError(400, "the input tensors have different numbers of rows", "give every input the same rows")
    rows = counts.pop()
    if len(columns) == 1 and list(columns) == ["text"]:
        return columns["text"]
    return [{name: column[i] for name, column in columns.items()} for i in range(rows)]


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in data:
        out.extend(_flatten(value) if isinstance(value, list) else [value])
    return out


def _product(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
