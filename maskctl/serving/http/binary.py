"""The Open Inference Protocol's binary tensor data extension (Triton's ``binary_tensor_data``),
the form ``tritonclient`` sends and asks for by default.

A request's body is its JSON header (``Inference-Header-Content-Length`` bytes), then the bytes
of each input whose ``parameters.binary_data_size`` says so, in input order. A BYTES element is a
4-byte little-endian length and that many bytes (here: UTF-8 text). An answer is built the same
way: outputs asked for as binary carry ``parameters.binary_data_size`` instead of ``data``, their
bytes follow the JSON header, whose length the same response header gives. Numbers are
little-endian (FP32 ``float32``, INT64 ``int64``), BOOL one byte per element.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from fastapi.responses import Response

from maskctl.serving.http.answers import ApiError

EXTENSION = "binary_tensor_data"
FIX = "give each BYTES element as a 4-byte little-endian length and its UTF-8 bytes, or send data as JSON"


def attach(inputs: list, data: bytes) -> None:
    """Give each input whose bytes follow the JSON header its ``data``; 400 for sizes that do
    not add up to ``data``, and for binary data of another type than BYTES."""
    offset = 0
    for tensor in inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(data):
            raise ApiError(
                400,
                f"input {tensor.name!r}: binary_data_size {size!r} is past the end of the body "
                f"({len(data)} bytes follow the JSON header)",
                "send the Inference-Header-Content-Length header and each tensor's bytes in input order",
            )
        if tensor.datatype != "BYTES":
            raise ApiError(400, f"input {tensor.name!r} is {tensor.datatype}", "send text inputs as datatype BYTES")
        tensor.data = decode_bytes(data[offset : offset + size], tensor.name)
        offset += size
    if offset != len(data):
        raise ApiError(
            400,
            f"{len(data) - offset} bytes follow the JSON header that no input's binary_data_size accounts for",
            "give each binary input its parameters.binary_data_size",
        )


def decode_bytes(buffer: bytes, name: str) -> list[str]:
    """The texts of one BYTES tensor's binary data."""
    texts, at = [], 0
    while at < len(buffer):
        if at + 4 > len(buffer):
            raise ApiError(400, f"input {name!r}: its binary data ends inside an element's length", FIX)
        size = int.from_bytes(buffer[at : at + 4], "little")
        at += 4
        if at + size > len(buffer):
            raise ApiError(400, f"input {name!r}: element {len(texts)} is longer than the data left", FIX)
        try:
            texts.append(buffer[at : at + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, f"input {name!r}: element {len(texts)} is not UTF-8 text", FIX) from None
        at += size
    return texts


def encode(datatype: str, values: list[Any]) -> bytes:
    """One output tensor's values as binary data."""
    if datatype == "FP32":
        return struct.pack(f"<{len(values)}f", *values)
    if datatype == "INT64":
        return struct.pack(f"<{len(values)}q", *values)
    if datatype == "BOOL":
        return bytes(bool(v) for v in values)
    pieces = [(v if isinstance(v, str) else json.dumps(v)).encode("utf-8") for v in values]
    return b"".join(len(p).to_bytes(4, "little") + p for p in pieces)


def response(head: dict[str, Any], tensors: list[tuple[dict[str, Any], bool]], headers: dict[str, str]) -> Response:
    """An infer answer with the outputs marked binary (``(tensor, binary)`` pairs) as binary data."""
    outputs, blobs = [], []
    for tensor, as_binary in tensors:
        if not as_binary:
            outputs.append(tensor)
            continue
        blob = encode(tensor["datatype"], tensor["data"])
        blobs.append(blob)
        outputs.append(
            {**{k: v for k, v in tensor.items() if k != "data"}, "parameters": {"binary_data_size": len(blob)}}
        )
    header = json.dumps({**head, "outputs": outputs}).encode()
    return Response(
        header + b"".join(blobs),
        200,
        {**headers, "Inference-Header-Content-Length": str(len(header))},
        media_type="application/octet-stream",
    )
