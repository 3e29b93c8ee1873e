"""Reading a request body without trusting it: at most ``limit`` bytes are ever held, then 413.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body is
refused as soon as the running total passes the limit, so one client cannot make the server buffer
what it likes (a 96 MiB body once took the server to 784 MB).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from runtime.server.errors import InvalidRequestError, PayloadTooLargeError

__all__ = ["read_body", "read_json"]


async def read_body(request: Request, limit: int) -> bytes:
    """The body, if it is at most ``limit`` bytes; ``PayloadTooLargeError`` (413) otherwise."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request, limit: int) -> Any:
    """The body parsed as strict JSON (400 when it is not, has NaN/Infinity, or is nested too deeply)."""
    raw = await read_body(request, limit)
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else f"not valid JSON: {exc}"
        raise InvalidRequestError(f"the body is {reason}", status=400) from None
