"""Errors of one pipeline request, each with the HTTP status and JSON body a client receives.

They extend the runtime's tree (``runtime.errors``), so a CLI entry point still prints them as one
line; the server renders them as ``{"error": {"message", "type", "code", ...}}``::

    GroveRuntimeError                         (runtime.errors)
    ├── ServerConfigError       a GP_* setting is invalid: the server refuses to start
    └── PipelineRunError        status, type, and the stage it concerns (if any)
        ├── InvalidRequestError      400/422: malformed JSON, a body that does not fit the signature
        │   └── PayloadTooLargeError 413: the body is over the server's limit (refused while reading)
        ├── UnauthorizedError        401: no or a wrong bearer key (entry) or stage token (stage servers)
        ├── NotFoundError            404: no such pipeline, stage or model on this server
        ├── DrainingError            503: the server is shutting down; retry on another replica
        ├── UndeclaredCallError      500: a stage called another that is not an edge of the graph
        ├── LoopLimitError           500: one stage was called more than ``max_iterations`` times
        ├── StageFailedError         500: the stage's own code raised (a bug, or a tool failing)
        ├── StageTimeoutError        504: the stage did not answer within its ``timeout_s``
        └── StageUpstreamError       502: the stage's server, the router or vLLM failed or was unreachable
            └── StageBusyError       503/429: a stage's router or server is busy; ``Retry-After`` says when

(``StageTimeoutError`` without a stage: the whole request outlived its deadline.)

Why the split: a client (or an autoscaler, or a retry policy) must tell "your pipeline has a bug"
(500) from "something behind it is down or slow" (502/504) without parsing messages.

What a client sees: the type, the status, the stage and the request id always; the message only when
the server wrote it about the request itself (``public``). A stage's exception text, an upstream's
answer and internal URLs stay in the server log (``runtime.server.failures``), under the request id.
"""

from __future__ import annotations

from typing import Any, ClassVar

from grove_pipelines.graph.model import ENTRY
from runtime.errors import GroveRuntimeError

__all__ = [
    "DrainingError",
    "InvalidRequestError",
    "LoopLimitError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PipelineRunError",
    "ServerConfigError",
    "StageBusyError",
    "StageFailedError",
    "StageTimeoutError",
    "StageUpstreamError",
    "UnauthorizedError",
    "UndeclaredCallError",
]


class ServerConfigError(GroveRuntimeError):
    """The server cannot start with these settings (a ``GP_*`` variable out of range)."""


class PipelineRunError(GroveRuntimeError):
    """A pipeline request failed; ``status`` and ``type`` say how the server answers it."""

    status: int = 500
    type: str = "pipeline_error"
    public: ClassVar[bool] = False
    """Whether :attr:`message` may reach the client (it describes the request, not the server's insides)."""

    def __init__(self, message: str, *, stage: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        if status is not None:
            self.status = status

    def client_message(self) -> str:
        """The message a client may read: :attr:`message` when public, else what failed and where."""
        if self.public:
            return self.message
        where = f"stage {self.stage!r}" if self.stage is not None else "the pipeline"
        return f"{where} failed ({self.type}); the server log has the details under this request id"

    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """Headers the answer carries besides the body (``Retry-After``, ``WWW-Authenticate``); none by default."""
        return ()

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON error body (the shape vLLM and the router use, plus the stage and request id)."""
        error: dict[str, Any] = {"message": self.client_message(), "type": self.type, "code": self.status}
        if self.stage is not None:
            error["stage"] = self.stage
        if request_id:
            error["request_id"] = request_id
        return {"error": error}


class InvalidRequestError(PipelineRunError):
    """The request cannot be run as sent: 400 for malformed JSON, 422 for a body that fails validation."""

    status = 422
    type = "invalid_request_error"
    public = True


class PayloadTooLargeError(InvalidRequestError):
    """The request body is larger than the server accepts; reading stopped at the limit."""

    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over this server's limit of {limit} bytes")
        self.limit = limit


class UnauthorizedError(PipelineRunError):
    """The request carries no accepted bearer key (or, on a stage server, no valid stage token)."""

    status = 401
    type = "authentication_error"
    public = True

    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return ((b"www-authenticate", b"Bearer"),)


class DrainingError(PipelineRunError):
    """The server received SIGTERM: it finishes what it has and takes nothing new."""

    status = 503
    type = "service_unavailable"
    public = True

    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return ((b"retry-after", b"1"),)


class NotFoundError(PipelineRunError):
    """No pipeline, stage or model of that name on this server."""

    status = 404
    type = "not_found_error"
    public = True


class UndeclaredCallError(PipelineRunError):
    """``caller`` called ``callee`` but the graph has no such edge; ``declare`` is the code to add."""

    type = "undeclared_call_error"
    public = True

    def __init__(self, caller: str, callee: str, *, declare: str = "") -> None:
        who = "the pipeline body" if caller == ENTRY else f"stage {caller!r}"
        fix = f"; the code scan cannot see this call: add {declare}" if declare else ""
        super().__init__(
            f"{who} called stage {callee!r}, which is not an edge of the pipeline graph{fix}",
            stage=callee,
        )
        self.caller = caller
        self.callee = callee


class LoopLimitError(PipelineRunError):
    """One request called a stage more than the pipeline's ``max_iterations`` times: a runaway loop."""

    type = "loop_limit_error"
    public = True

    def __init__(self, stage: str, limit: int) -> None:
        super().__init__(
            f"stage {stage!r} was called more than {limit} times in one request "
            f"(the pipeline's max_iterations); is a loop unbounded?",
            stage=stage,
        )
        self.limit = limit


class StageFailedError(PipelineRunError):
    """The stage's own code raised an exception."""

    type = "stage_error"


class StageTimeoutError(PipelineRunError):
    """The stage did not finish within its ``timeout_s`` (after all retries)."""

    status = 504
    type = "timeout_error"
    public = True


class StageUpstreamError(PipelineRunError):
    """A stage server, the router or a vLLM worker failed or could not be reached."""

    status = 502
    type = "upstream_error"


class StageBusyError(StageUpstreamError):
    """A stage answered busy after the server's own waits: an LLM stage's router (429: its queue is full;
    503: no worker can take the request now), or a stage server that is draining with no replica to
    take the call. The client hears the same status and ``Retry-After``, and retries the request later
    instead of taking it for a failure."""

    public = True

    def __init__(self, stage: str, status: int, retry_after: int | None) -> None:
        after = f"; retry after {retry_after} s" if retry_after is not None else ""
        super().__init__(f"stage {stage!r} is busy{after}", stage=stage, status=status)
        self.type = "rate_limit_error" if status == 429 else "service_unavailable"
        self.retry_after = retry_after

    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return () if self.retry_after is None else ((b"retry-after", b"%d" % self.retry_after),)


_BY_TYPE: dict[str, type[PipelineRunError]] = {
    cls.type: cls
    for cls in (InvalidRequestError, NotFoundError, StageFailedError, StageTimeoutError, StageUpstreamError)
}


def from_body(
    status: int, body: object, *, stage: str, url: str, retry_after: int | None = None
) -> PipelineRunError:
    """Rebuild the error a remote stage server answered with (its message and stage kept).

    Its 503 that names no stage is its :class:`DrainingError`: it refused the call without running it.
    A busy answer (429/503) about a stage it called is that stage's :class:`StageBusyError`, with the
    answer's ``retry_after``.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or "message" not in error:
        return StageUpstreamError(f"stage {stage!r} at {url} answered HTTP {status}", stage=stage)
    kind = error.get("type")
    if status == 503 and kind == DrainingError.type and error.get("stage") is None:
        return DrainingError(f"the server of stage {stage!r} at {url} is draining", stage=stage)
    if status in (429, 503) and kind in ("service_unavailable", "rate_limit_error"):
        return StageBusyError(str(error.get("stage") or stage), status, retry_after)
    cls = _BY_TYPE.get(str(kind), PipelineRunError)
    if cls is InvalidRequestError or cls is NotFoundError:
        # The caller sent what the callee refused: a bug on the calling side, not the client's input.
        cls = StageFailedError
    elif cls is PipelineRunError and status in (401, 503):  # a wrong stage token
        return StageUpstreamError(f"stage {stage!r} at {url} answered HTTP {status}", stage=stage)
    return cls(
        str(error["message"]),
        stage=str(error.get("stage") or stage),
        status=status if status >= 500 else None,
    )
