"""OpenAI request fields a client may never set: the router and the workers own them.

``kv_transfer_params`` steers vLLM's KV connector: on a NixlConnector consumer it makes the decode
worker fetch KV from whatever host the request names, on a producer it pins KV blocks;
``ec_transfer_params`` does the same for the encoder cache. ``request_id`` is the engine's own
request id (the router derives one per leg from ``X-Request-Id``). Anything that takes a client request
to a worker strips these first and sends a re-serialized body, never the client's raw bytes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRIVATE_FIELDS", "strip_private"]

PRIVATE_FIELDS = frozenset({"kv_transfer_params", "ec_transfer_params", "request_id"})


def strip_private(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without the fields only the router may set."""
    return {key: value for key, value in body.items() if key not in PRIVATE_FIELDS}
