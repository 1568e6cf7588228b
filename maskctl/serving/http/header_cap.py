"""The HTTP/1.1 protocol under the app, with the request head (request line and headers)
bounded before it is buffered.

uvicorn's httptools protocol keeps every header it parses, whatever its size: a client could
send a 16 MB header to a server that caps bodies at 1 MiB and the process grew by as much. Here
the bytes of a request's head are counted as they arrive (fed to the parser in slices while
the head is incomplete, so a body arriving in the same packet is never counted) and past
``--max-header-kb`` the client gets 431 and the connection closes. Without httptools, h11's own
bound (``h11_max_incomplete_event_size``) does the same, answering 400.
"""

from __future__ import annotations

import json
from typing import Any

SLICE = 4096  # bytes fed to the parser at a time while a request head is incomplete


def protocol_options(max_header_bytes: int) -> dict[str, Any]:
    """uvicorn ``Config`` keywords that bound the request head at ``max_header_bytes``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: h11, with its own bound
        return {"http": "h11", "h11_max_incomplete_event_size": max_header_bytes}

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        limit = max_header_bytes

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True

        def on_headers_complete(self) -> None:
            self._head_bytes, self._in_head = 0, False  # the next request's head counts from zero
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            if not getattr(self, "_in_head", True):
                return super().data_received(data)
            view = memoryview(data)
            for start in range(0, len(data), SLICE):
                if self.transport.is_closing():
                    return
                if not getattr(self, "_in_head", True):  # the head ended inside the last slice
                    return super().data_received(bytes(view[start:]))
                self._head_bytes = getattr(self, "_head_bytes", 0) + min(SLICE, len(data) - start)
                if self._head_bytes > self.limit:
                    return self._refuse_head()
                super().data_received(bytes(view[start : start + SLICE]))

        def _refuse_head(self) -> None:
            body = json.dumps(
                {
                    "error": {
                        "code": 431,
                        "message": f"the request's headers are over the limit of {self.limit // 1024} KiB",
                        "fix": "send smaller headers, or start the server with a larger --max-header-kb",
                    }
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
            )
            self.transport.close()

    return {"http": BoundedHttpToolsProtocol}
