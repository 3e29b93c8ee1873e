"""OpenAI request fields a client of the pipeline server may never set: the router and the workers own them.

``kv_transfer_params`` steers vLLM's KV connector (on a NixlConnector consumer it makes the decode
worker fetch KV from whatever host the request names, on a producer it pins KV blocks);
``ec_transfer_params`` does the same for the encoder cache: the router's ``ROUTER_OWNED``, also
hidden inside ``vllm_xargs``. ``request_id`` is the engine's own request id (the router derives one
per leg from ``X-Request-Id``). The server strips them and sends a re-serialized body, never the
client's raw bytes.
"""

from __future__ import annotations

from typing import Any

from runtime.router.request import ROUTER_OWNED

__all__ = ["PRIVATE_FIELDS", "strip_private"]

PRIVATE_FIELDS = frozenset({*ROUTER_OWNED, "request_id"})


def strip_private(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without the fields only the router may set (at the top and in ``vllm_xargs``)."""
    clean = {key: value for key, value in body.items() if key not in PRIVATE_FIELDS}
    xargs = clean.get("vllm_xargs")
    if isinstance(xargs, dict):
        clean["vllm_xargs"] = {key: value for key, value in xargs.items() if key not in PRIVATE_FIELDS}
    return clean
