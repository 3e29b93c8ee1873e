"""An answer the router gives itself (401, 404, 429, 502, 503, ...), in the OpenAI error shape."""

from __future__ import annotations

from collections.abc import Sequence

from runtime.http import Responder, Response, error_body

__all__ = ["JSON", "HTTPError", "Header"]

Header = tuple[bytes, bytes]
JSON = b"application/json"


class HTTPError(Exception):
    """An answer the router gives itself; rendered as an OpenAI-style error body."""

    def __init__(self, status: int, message: str, kind: str, headers: Sequence[Header] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers

    def body(self) -> bytes:
        """The JSON error body."""
        return error_body(self.message, self.kind, self.status)

    def response(self) -> Response:
        """The error as an answer."""
        return Response(self.status, self.body(), JSON, self.headers)

    def answer(self, responder: Responder) -> None:
        """Write the error as a direct answer."""
        responder.answer(self.status, self.body(), JSON, self.headers)
