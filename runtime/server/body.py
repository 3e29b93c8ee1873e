"""Parsing a request body without trusting it: strict JSON, nothing the server could choke on.

The size is bounded before this runs: the listener refuses a declared ``Content-Length`` over
``GP_MAX_BODY_BYTES`` before a byte is read, and a chunked body as soon as its running total passes
the limit (413), so one client cannot make the server buffer what it likes (a 96 MiB body once
took the server to 784 MB).
"""

from __future__ import annotations

import json
from typing import Any

from runtime.http.json_wire import decode_like_stdlib
from runtime.server.errors import InvalidRequestError

__all__ = ["parse_json"]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(parse_constant=_no_constant)
"""Made once: ``json.loads`` with ``parse_constant`` would build a decoder for every body."""


def _strict(raw: bytes) -> Any:
    # what json.loads does with bytes: UTF-8, -16 or -32 as detected, lone surrogates kept
    return _STRICT.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))


def parse_json(raw: bytes) -> Any:
    """The body parsed as strict JSON (400 when it is not, has NaN/Infinity, or is nested too deeply)."""
    try:
        return decode_like_stdlib(raw, _strict)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else f"not valid JSON: {exc}"
        raise InvalidRequestError(f"the body is {reason}", status=400) from None
