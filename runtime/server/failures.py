"""What a client sees of a failure, and what the server log gets: one place for both.

The client gets ``{"error": {"message", "type", "code", "stage"?, "request_id"}}``; for anything the
server did not write about the request itself (a stage's exception, an upstream's answer, an internal
bug) the message only says what failed and where. The detail, with its traceback, goes to the log
under the same request id, so an operator finds it and a client never reads a credential or a URL.
"""

from __future__ import annotations

import logging
from typing import Any

from runtime.server.errors import PipelineRunError

__all__ = ["describe_failure"]

log = logging.getLogger("grove_pipelines.server")


def describe_failure(
    error: BaseException, request_id: str | None, *, where: str
) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for ``error``; server-side failures are logged in full, client mistakes briefly."""
    if not isinstance(error, PipelineRunError):
        log.error("request %s: internal error serving %s", request_id, where, exc_info=error)
        body: dict[str, Any] = {
            "message": "internal error; the server log has the details under this request id",
            "type": "internal_error",
            "code": 500,
        }
        if request_id:
            body["request_id"] = request_id
        return 500, {"error": body}
    if error.status >= 500:
        log.error(
            "request %s: %s failed: %s (%s)",
            request_id,
            where,
            error.message,
            error.type,
            exc_info=error if error.__cause__ is not None else None,
        )
    else:
        log.info("request %s: %s refused: %s", request_id, where, error.message)
    return error.status, error.body(request_id)
