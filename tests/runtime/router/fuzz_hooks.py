"""schemathesis hooks for the router fuzz runs (loaded through ``SCHEMATHESIS_HOOKS``): no answer may
carry a traceback or an internal address, and every error must have the OpenAI error shape."""

from __future__ import annotations

import json
from typing import Any

import schemathesis

_LEAKS = (b"Traceback", b'File "', b"127.0.0.1")


@schemathesis.check
def no_leak_and_openai_errors(ctx: Any, response: Any, case: Any) -> None:
    """An error answer is ``{"error": {"message", "type", "code"}}`` and no answer leaks internals."""
    body: bytes = response.content or b""
    if case.path == "/metrics":  # Prometheus labels name the workers by design
        return
    for leak in _LEAKS:
        if leak in body:
            raise AssertionError(f"the answer contains {leak!r}")
    if response.status_code >= 400:
        error = json.loads(body)["error"]
        if not {"message", "type", "code"} <= set(error) or error["code"] != response.status_code:
            raise AssertionError(f"not an OpenAI-style error body: {body[:200]!r}")
