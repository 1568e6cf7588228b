"""The Open Inference Protocol v2 (KServe, Triton) as a thin shape over the batcher (``answers``).

Health, server and model metadata, and ``POST /v2/models/{task}/infer`` with BYTES input tensors
named after the kind's input fields (``text`` [, ``text_pair``]; ``context`` + ``endings``),
answered with one output tensor per field of the kind's result; ``id`` echoed; errors as
``{"error": "..."}``. Every model route is also served under ``/versions/1`` (the one version the
metadata advertises), and the request body is read as JSON whatever its Content-Type says, as
KServe and Triton read it, since Triton's own client sends none.

The binary tensor data extension (``binary.py``) is what ``tritonclient`` uses by default: the
JSON header, then each tensor's bytes. Both directions are served, so Triton's client works
without ``binary_data=False``. The spec's checks are kept: an input named twice, an output
nobody declared, a shape of another rank than declared, or a tensor with no elements is a 400.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maskctl.serving.http import binary
from maskctl.serving.http.answers import ApiError, json_response, validation_message
from maskctl.serving.http.answers import json_body as _json
from maskctl.serving.results import RequestError
from maskctl.version import __version__

TAGS = ["open-inference-protocol"]
VERSION = "1"  # a task's one version: its bundle file is replaced in place, not versioned beside
OIP_TYPES = {"str": "BYTES", "float": "FP32", "int": "INT64", "bool": "BOOL"}  # result field type -> datatype
HEADER_LENGTH = "inference-header-content-length"
INLINE_BYTES = 64 * 1024  # bodies parsed on the event loop; larger ones on a worker thread


class OipTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(
        None,
        description="Row-major, flat or nested; absent when the tensor's "
        "bytes follow the JSON header (parameters.binary_data_size).",
    )


class OipOutputRequest(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class OipRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[OipTensor] = Field(..., min_length=1)
    outputs: list[OipOutputRequest] | None = None


def add_oip_routes(app: FastAPI, state) -> None:
    def model(name: str, version: str | None = None):
        serving = state.folder.serving()
        if name not in serving:
            raise ApiError(404, f"model {name!r} is not served", "use one of the served models", serving)
        if version is not None and version != VERSION:
            raise ApiError(
                404,
                f"model {name!r} has no version {version!r}",
                f"its one version is {VERSION!r} (or leave the version out)",
            )
        return state.model.task(name)

    @app.get("/v2", tags=TAGS)
    async def server_metadata() -> Response:
        return _json({"name": "maskctl", "version": __version__, "extensions": [binary.EXTENSION]})

    @app.get("/v2/health/live", tags=TAGS)
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=TAGS)
    async def ready() -> Response:
        up = bool(state.model.tasks) and not state.stopping
        return _json({"ready": up}, 200 if up else 503)

    def metadata(name: str, version: str | None = None) -> Response:
        kind = model(name, version).kind
        inputs = [{"name": f, "datatype": "BYTES", "shape": [-1] * rank} for f, rank in _fields(kind).items()]
        outputs = [{"name": f, "datatype": datatype, "shape": [-1]} for f, datatype in _outputs(kind)]
        return _json(
            {
                "name": name,
                "versions": [VERSION],
                "platform": "maskctl",
                "inputs": inputs,
                "outputs": outputs,
                "parameters": {"kind": kind.name, "labels": list(state.model.task(name).labels)},
            }
        )

    @app.get("/v2/models/{name}", tags=TAGS)
    async def model_metadata(name: str) -> Response:
        return metadata(name)

    @app.get("/v2/models/{name}/versions/{version}", tags=TAGS)
    async def version_metadata(name: str, version: str) -> Response:
        return metadata(name, version)

    @app.get("/v2/models/{name}/ready", tags=TAGS)
    async def model_ready(name: str) -> Response:
        model(name)
        return _json({"name": name, "ready": True})

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=TAGS)
    async def version_ready(name: str, version: str) -> Response:
        model(name, version)
        return _json({"name": name, "version": version, "ready": True})

    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        kind = model(name, version).kind
        raw = await request.body()
        header = request.headers.get(HEADER_LENGTH)
        body = _parse(raw, header) if len(raw) <= INLINE_BYTES else await asyncio.to_thread(_parse, raw, header)
        items = rows(body.inputs, _fields(kind))
        outputs = _wanted(body, kind, name)
        a = state.answers
        with a.admit(len(items)):
            requests = [(name, item, f"row {i}") for i, item in enumerate(items)]
            results, timing = await a.answer(requests, request.receive)
        failed = next((r for r in results if isinstance(r, RequestError)), None)
        if failed is not None:
            raise ApiError(failed.status, failed.message, failed.fix)
        tensors = [
            (_tensor(f, datatype, [getattr(r, f) for r in results]), as_binary) for f, datatype, as_binary in outputs
        ]
        head = {"model_name": name, "model_version": VERSION, "id": body.id}
        if not any(as_binary for _, as_binary in tensors):
            return await json_response(
                {**head, "outputs": [t for t, _ in tensors]}, a.heavy(requests), timing.headers()
            )
        if a.heavy(requests):
            return await asyncio.to_thread(binary.response, head, tensors, timing.headers())
        return binary.response(head, tensors, timing.headers())

    schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(OipRequest.model_json_schema())}},
        }
    }

    @app.post("/v2/models/{name}/infer", tags=TAGS, openapi_extra=schema)
    async def model_infer(name: str, request: Request) -> Response:
        """One BYTES tensor per input field (``data`` row-major, or binary after the JSON header);
        one output tensor per result field."""
        return await infer(name, request)

    @app.post("/v2/models/{name}/versions/{version}/infer", tags=TAGS, openapi_extra=schema)
    async def version_infer(name: str, version: str, request: Request) -> Response:
        """``/v2/models/{name}/infer`` for the model's one version, ``1``."""
        return await infer(name, request, version)


def _parse(raw: bytes, header: str | None) -> OipRequest:
    """The request from its body: JSON whatever the Content-Type, then the tensors' binary data
    when ``Inference-Header-Content-Length`` (``header``) says where the JSON ends."""
    if header is not None and (not header.strip().isdigit() or int(header) > len(raw)):
        raise ApiError(
            400,
            f"Inference-Header-Content-Length {header[:20]!r} does not fit a body of {len(raw)} bytes",
            "give the length in bytes of the JSON header that starts the body",
        )
    cut = len(raw) if header is None else int(header)
    try:
        parsed = json.loads(raw[:cut])
    except (ValueError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON", f"send a JSON body like {HINT}") from None
    try:
        body = OipRequest.model_validate(parsed)
    except ValidationError as exc:
        raise ApiError(400, validation_message(exc.errors()), f"send a JSON body like {HINT}") from None
    binary.attach(body.inputs, raw[cut:])
    return body


_END = object()
HINT = '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["<text>"]}]}'


def _fields(kind) -> dict[str, int]:
    return getattr(kind, "input_fields", {"text": 1})


def _outputs(kind) -> list[tuple[str, str]]:
    """The output tensors of a kind: its result's fields, lists and dicts as JSON in BYTES."""
    names = (f.type if isinstance(f.type, str) else f.type.__name__ for f in dataclasses.fields(kind.result_type))
    return [(f.name, OIP_TYPES.get(t, "BYTES")) for f, t in zip(dataclasses.fields(kind.result_type), names)]


def _wanted(body: OipRequest, kind, name: str) -> list[tuple[str, str, bool]]:
    """The outputs to answer, each with whether it goes as binary data: the ones asked for
    (any other name is a 400, as the spec says), else all; binary where the output's
    ``binary_data`` or the request's ``binary_data_output`` parameter asks for it."""
    declared = dict(_outputs(kind))
    everything = bool((body.parameters or {}).get("binary_data_output", False))
    if not body.outputs:
        return [(f, datatype, everything) for f, datatype in declared.items()]
    unknown = [o.name for o in body.outputs if o.name not in declared]
    if unknown:
        raise ApiError(
            400,
            f"unexpected inference output {unknown[0]!r} for model {name!r}",
            f"ask for some of {list(declared)}, or for no outputs to get them all",
        )
    return [(o.name, declared[o.name], bool((o.parameters or {}).get("binary_data", everything))) for o in body.outputs]


def _tensor(name: str, datatype: str, values: list[Any]) -> dict[str, Any]:
    data = values if datatype != "BYTES" or all(isinstance(v, str) for v in values) else [json.dumps(v) for v in values]
    return {"name": name, "datatype": datatype, "shape": [len(values)], "data": data}


def rows(tensors: list[OipTensor], fields: dict[str, int]) -> list[Any]:
    """One input object per row from the request's tensors, each checked as the spec says: named
    once, of the declared rank (``[-1]`` a text per row, ``[-1, -1]`` a list of texts per row),
    BYTES, with at least one element and as many as its shape holds."""
    first = next(iter(fields))
    if len(tensors) == 1 and tensors[0].name not in fields:  # one tensor of any name (KServe's "input-0")
        tensors = [tensors[0].model_copy(update={"name": first})]
    names = [t.name for t in tensors]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise ApiError(400, f"input {twice!r} is given more than once", "send each input tensor once")
    known = {t.name: t for t in tensors}
    unknown = sorted(set(known) - set(fields))
    if unknown or first not in known:
        raise ApiError(
            400,
            f"inputs named {sorted(known)}; this model takes {list(fields)}",
            f"send a BYTES tensor named {first!r} (GET /v2/models/<task> lists them)",
        )
    columns: dict[str, list[Any]] = {}
    for name, t in known.items():
        declared = [-1] * fields[name]
        if t.datatype != "BYTES":
            raise ApiError(400, f"input {name!r} is {t.datatype}", "send text inputs as datatype BYTES")
        if len(t.shape) != len(declared) or any(d < 0 for d in t.shape):
            raise ApiError(
                400,
                f"input {name!r} has shape {t.shape}; this model declares {declared}",
                "give shape [rows, n]: n texts per row"
                if len(declared) == 2
                else "give shape [rows]: one text per row",
            )
        if 0 in t.shape:
            raise ApiError(400, f"input {name!r} has no elements (shape {t.shape})", "send at least one row")
        if t.data is None:
            raise ApiError(
                400,
                f"input {name!r} has no data",
                "give its data, or its bytes after the JSON header (parameters.binary_data_size)",
            )
        flat = _flatten(t.data)
        if _product(t.shape) != len(flat):
            raise ApiError(
                400,
                f"input {name!r}: shape {t.shape} does not hold its {len(flat)} values",
                "give the shape that matches data",
            )
        width = t.shape[1] if len(declared) == 2 else 1
        columns[name] = [
            flat[i * width : (i + 1) * width] if width > 1 or len(declared) == 2 else flat[i] for i in range(t.shape[0])
        ]
    counts = {len(c) for c in columns.values()}
    if len(counts) != 1:
        raise ApiError(400, "the input tensors have different numbers of rows", "give every input the same rows")
    if list(columns) == ["text"]:
        return columns["text"]
    return [{name: column[i] for name, column in columns.items()} for i in range(counts.pop())]


def _flatten(data: list[Any]) -> list[Any]:
    """Nested lists' values in row-major order (without recursion: nesting is the client's)."""
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        value = next(stack[-1], _END)
        if value is _END:
            stack.pop()
        elif isinstance(value, list):
            stack.append(iter(value))
        else:
            out.append(value)
    return out


def _product(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` written in place, for the OpenAPI page of a
    route that reads its body itself (a ``$ref`` to ``#/$defs`` means nothing there)."""
    defs = schema.pop("$defs", {})

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if "$ref" in value:
                return walk(defs[value["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(schema)
