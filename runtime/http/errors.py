"""The one JSON error shape every runtime HTTP answer uses: ``{"error": {"message", "type", "param", "code"}}``.

OpenAI's and vLLM's shape (``param`` always null here), so OpenAI clients parse it. Clients get a
short message, a type and the status as ``code``; never a traceback, an internal URL or exception
text (those go to the log).
"""

from __future__ import annotations

import json

__all__ = ["INTERNAL_ERROR", "HttpError", "StreamBroken", "error_body"]


def error_body(message: str, type_: str, code: int) -> bytes:
    """The encoded error document for ``message`` of ``type_`` with HTTP status ``code``."""
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


INTERNAL_ERROR = error_body("internal server error", "server_error", 500)
"""What a client is told of a failure inside the server (the log has the rest)."""


class HttpError(Exception):
    """Raise from a handler to answer ``status`` with the JSON error shape."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_

    def body(self) -> bytes:
        """The JSON error document for this error."""
        return error_body(self.message, self.type, self.status)


class StreamBroken(Exception):
    """Raise from a stream's iterator once it has yielded its own account of a failure.

    The listener then ends the answer without the terminating chunk (so no client takes it for a
    complete one), after flushing what was written; nothing is logged as a crash.
    """
