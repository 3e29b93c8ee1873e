"""What a client may cost the listener: sizes, deadlines and the connection cap (one schema)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ListenerLimits"]


class ListenerLimits(BaseModel):
    """Bounds on every client connection; defaults suit a sidecar in front of vLLM.

    Every byte a client sends is bounded in size and in time: a slow sender (slowloris) is cut at
    ``header_timeout``/``body_timeout``, and a reader that stops reading a stream is cut when a
    write stays blocked for ``write_stall_timeout``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_header_bytes: int = Field(default=64 * 1024, gt=0, description="request line plus headers")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    header_timeout: float = Field(default=10.0, gt=0, description="seconds from first byte to end of headers")
    body_timeout: float = Field(default=60.0, gt=0, description="seconds from end of headers to end of body")
    keepalive_timeout: float = Field(default=30.0, gt=0, description="idle seconds between requests")
    write_stall_timeout: float = Field(default=30.0, gt=0, description="seconds a blocked write may wait")
    max_connections: int = Field(default=4096, gt=0)
    drain_timeout: float = Field(default=30.0, ge=0, description="seconds in-flight requests get on stop")
    backlog: int = Field(default=2048, gt=0)
