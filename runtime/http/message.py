"""A parsed request and the two answers a handler can give: a whole body or a stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Request", "Response", "StreamingResponse"]

Header = tuple[bytes, bytes]


@dataclass(slots=True)
class Request:
    """One HTTP request: header names are lower-cased; the body has been read whole (within limits)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    client: str = ""
    params: dict[str, str] = field(default_factory=dict)
    """Path parameters filled in by :class:`~runtime.http.routes.Routes` (``{name}`` segments)."""

    def header(self, name: str, default: str = "") -> str:
        """The value of header ``name`` (lower-case), or ``default``."""
        return self.headers.get(name, default)


@dataclass(slots=True)
class Response:
    """A whole answer, sent with ``Content-Length``."""

    status: int = 200
    body: bytes = b""
    content_type: bytes = b"application/json"
    headers: Sequence[Header] = field(default_factory=tuple)


@dataclass(slots=True)
class StreamingResponse:
    """An answer sent chunk by chunk (chunked transfer encoding), each chunk flushed as it comes.

    When the client goes away or stops reading, ``chunks`` is closed (``aclose``), which is where a
    proxy closes its upstream socket.
    """

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: bytes = b"text/event-stream"
    headers: Sequence[Header] = field(default_factory=tuple)
    on_abort: Callable[[str], None] | None = None
    """Told why the client's side ended early: ``"stopped-reading"`` or ``"disconnected"`` (metrics)."""
