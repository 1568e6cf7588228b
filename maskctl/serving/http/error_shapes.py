"""An error answered in the shape of the route that was asked: TEI's ``{"error", "error_type"}``,
the Open Inference Protocol's ``{"error"}``, or maskctl's own body (``guard.error_body``), so
each protocol's client reads the errors it expects; and the body each route expects, for the
error of a body that does not fit."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import Response

from maskctl.serving.http.answers import named
from maskctl.serving.http.guard import error_body
from maskctl.serving.http.oip import HINT as OIP_HINT
from maskctl.serving.http.tei import TEI_PATHS, TEI_TYPES


def error_response(
    request: Request,
    code: int,
    message: str,
    fix: str | None = None,
    tasks: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error in the shape of the route that was asked: TEI's, OIP's, or maskctl's own.
    ``tasks`` (an unknown or ambiguous task) are named in the message, the first 20 of them."""
    route = getattr(request.scope.get("route"), "path", "")  # unrouted paths: maskctl's own shape
    if tasks is not None:
        tasks = sorted(tasks)
        fix = f"{fix or 'the served tasks'}: {named(tasks)}"
    text = f"{message} ({fix})" if fix else message
    if route in TEI_PATHS:
        body = json.dumps({"error": text, "error_type": TEI_TYPES.get(code, "Validation")}).encode()
    elif route.startswith("/v2"):
        body = json.dumps({"error": text}).encode()
    else:
        body = error_body(code, message, fix, tasks=tasks[:20] if tasks is not None else None)
    return Response(body, code, headers, media_type="application/json")


def hint(request: Request, default: str) -> str:
    """The body a route expects, for the error of a body that does not fit it."""
    route = getattr(request.scope.get("route"), "path", "")
    if route in TEI_PATHS:
        return '{"inputs": "<text>" | ["<text>", "<pair>"] | [["<text>"], ...]}'
    if route.startswith("/v2"):
        return OIP_HINT
    return default
