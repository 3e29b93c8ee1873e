"""Errors of one pipeline request, each with the HTTP status and JSON body a client receives.

They extend the runtime's tree (``runtime.errors``), so a CLI entry point still prints them as one
line; the server renders them as ``{"error": {"message", "type", "code", ...}}``::

    GroveRuntimeError                         (runtime.errors)
    └── PipelineRunError        status, type, and the stage it concerns (if any)
        ├── InvalidRequestError      400/422: malformed JSON, a body that does not fit the signature
        ├── NotFoundError            404: no such pipeline, stage or model on this server
        ├── UndeclaredCallError      500: a stage called another that is not an edge of the graph
        ├── LoopLimitError           500: one stage was called more than ``max_iterations`` times
        ├── StageFailedError         500: the stage's own code raised (a bug, or a tool failing)
        ├── StageTimeoutError        504: the stage did not answer within its ``timeout_s``
        └── StageUpstreamError       502: the stage's server, the router or vLLM failed or was unreachable

Why the split: a client (or an autoscaler, or a retry policy) must tell "your pipeline has a bug"
(500) from "something behind it is down or slow" (502/504) without parsing messages.
"""

from __future__ import annotations

from typing import Any

from grove_pipelines.graph.model import ENTRY
from runtime.errors import GroveRuntimeError

__all__ = [
    "InvalidRequestError",
    "LoopLimitError",
    "NotFoundError",
    "PipelineRunError",
    "StageFailedError",
    "StageTimeoutError",
    "StageUpstreamError",
    "UndeclaredCallError",
]


class PipelineRunError(GroveRuntimeError):
    """A pipeline request failed; ``status`` and ``type`` say how the server answers it."""

    status: int = 500
    type: str = "pipeline_error"

    def __init__(self, message: str, *, stage: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        """The JSON error body (the same shape vLLM and the router use, plus the stage)."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.status}
        if self.stage is not None:
            error["stage"] = self.stage
        return {"error": error}


class InvalidRequestError(PipelineRunError):
    """The request cannot be run as sent: 400 for malformed JSON, 422 for a body that fails validation."""

    status = 422
    type = "invalid_request_error"


class NotFoundError(PipelineRunError):
    """No pipeline, stage or model of that name on this server."""

    status = 404
    type = "not_found_error"


class UndeclaredCallError(PipelineRunError):
    """``caller`` called ``callee`` but the graph has no such edge; ``declare`` is the code to add."""

    type = "undeclared_call_error"

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


class StageUpstreamError(PipelineRunError):
    """A stage server, the router or a vLLM worker failed or could not be reached."""

    status = 502
    type = "upstream_error"


_BY_TYPE: dict[str, type[PipelineRunError]] = {
    cls.type: cls
    for cls in (InvalidRequestError, NotFoundError, StageFailedError, StageTimeoutError, StageUpstreamError)
}


def from_body(status: int, body: object, *, stage: str, url: str) -> PipelineRunError:
    """Rebuild the error a remote stage server answered with (its message and stage kept)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or "message" not in error:
        return StageUpstreamError(f"stage {stage!r} at {url} answered HTTP {status}", stage=stage)
    cls = _BY_TYPE.get(str(error.get("type")), PipelineRunError)
    if cls is InvalidRequestError or cls is NotFoundError:
        # The caller sent what the callee refused: a bug on the calling side, not the client's input.
        cls = StageFailedError
    return cls(str(error["message"]), stage=str(error.get("stage") or stage), status=status if status >= 500 else None)
