"""What every request passes before a route: the API key (``Authorization: Bearer``, the scheme
in any case), the body size limit, HEAD answered as GET without a body, and the request
metrics. A plain ASGI middleware (no per-request task, unlike ``BaseHTTPMiddleware``). Header
size is bounded earlier too, in the HTTP protocol (``header_cap.py``), before a header is buffered.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

# Health probes answer without a key (load balancers and Kubernetes probes send none): maskctl's,
# and the Open Inference Protocol's server probes (a KServe deployment's). Model readiness keeps
# the key: it tells which task names are served.
OPEN_PATHS = ("/health", "/ready", "/v2/health/live", "/v2/health/ready")


def error_body(code: int, message: str, fix: str | None = None, **extra: Any) -> bytes:
    detail = {"code": code, "message": message, "fix": fix, **{k: v for k, v in extra.items() if v is not None}}
    return json.dumps({"error": detail}).encode()


class Guard:
    def __init__(self, app, api_key: str | None, max_body: int, metrics=None, max_header: int | None = None) -> None:
        self.app, self.max_body, self.metrics, self.max_header = app, max_body, metrics, max_header
        self.token = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_counted(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        if scope["method"] == "HEAD":  # HTTP wants HEAD wherever GET works: GET's headers, no body
            scope, send_counted = {**scope, "method": "GET"}, _headless(send_counted)
        try:
            await self._guarded(scope, receive, send_counted)
        finally:
            if self.metrics:
                route = scope.get("route")
                label = getattr(route, "path", None) or "unrouted"  # refused early, or no such path: bounded labels
                self.metrics.requests.labels(label, str(status["code"])).inc()
                self.metrics.latency.labels(label).observe(time.perf_counter() - started)

    async def _guarded(self, scope, receive, send) -> None:
        if self.max_header and sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > self.max_header:
            # h11 bounds only a head still arriving; one that came whole is refused here
            return await _reply(
                send,
                431,
                error_body(
                    431,
                    f"the request's headers are over the limit of {self.max_header // 1024} KiB",
                    "send smaller headers, or start the server with a larger --max-header-kb",
                ),
            )
        headers = dict(scope["headers"])
        if self.token and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            scheme, _, key = given.strip().partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(key.strip(), self.token):  # scheme: any case
                what = "a wrong API key" if given else "no API key"
                return await _reply(
                    send,
                    401,
                    error_body(401, f"{what} was given", "send the header 'Authorization: Bearer <key>'"),
                    [(b"www-authenticate", b"Bearer")],
                )
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _reply(send, 413, self._too_large())
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = bytearray()
            while True:  # read the body up to the limit, then hand it on
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > self.max_body:
                    return await _reply(send, 413, self._too_large())
                if not message.get("more_body"):
                    break
            receive = _replay(bytes(body), receive)
        await self.app(scope, receive, send)

    def _too_large(self) -> bytes:
        return error_body(
            413,
            f"the request body is over the limit of {self.max_body // 1024} KiB",
            "send fewer inputs per request, or start the server with a larger --max-body-kb",
        )


def _headless(send):
    """``send`` for a HEAD request answered as GET: the same status and headers, no body."""

    async def headless(message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return headless


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send, status: int, body: bytes, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
