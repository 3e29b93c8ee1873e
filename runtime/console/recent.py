"""The last pipeline requests and the stage calls each made, in memory and bounded, for the page's waterfalls.

A request is recorded from its start to its end (``begin``/``finish``, by request id); a stage call is
recorded when it ends (``stage_call``), placed by the id of the request whose invoker made it. Calls a
stage server makes for another server's request are not recorded there (that server never began them).
:class:`Waterfalls` is the seam the page reads through, so a span store can take this recorder's place.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from pydantic import BaseModel

__all__ = ["RecentRequests", "RequestSummary", "StageCallRecord", "Waterfall", "Waterfalls"]


class StageCallRecord(BaseModel):
    """One stage or LLM call of a request, retries included: when it started (from the request's start) and for how long."""

    caller: str
    stage: str
    outcome: str
    start_s: float
    duration_s: float


class RequestSummary(BaseModel):
    """One request as the list shows it; ``status`` is None and ``duration_s`` None while it runs."""

    request_id: str
    pipeline: str
    started_at: float
    status: str | None = None
    duration_s: float | None = None
    calls: int = 0


class Waterfall(BaseModel):
    """A request and its stage calls in the order they ended; ``dropped`` counts calls over the bound."""

    request: RequestSummary
    calls: list[StageCallRecord]
    dropped: int = 0


class Waterfalls(Protocol):
    """What the page reads: the recent requests, newest first, and one request's waterfall."""

    def recent(self) -> list[RequestSummary]: ...

    def waterfall(self, request_id: str) -> Waterfall | None: ...


class _Entry:
    """One request: its summary's fields as a plain dict (a request pays no model; the page's read makes one)."""

    __slots__ = ("began", "calls", "dropped", "fields")

    def __init__(self, request_id: str, pipeline: str, started_at: float, began: float) -> None:
        self.fields: dict[str, Any] = {
            "request_id": request_id,
            "pipeline": pipeline,
            "started_at": started_at,
            "calls": 0,  # stage calls made, the dropped ones included
        }
        self.began = began
        self.calls: list[tuple[str, str, str, float, float]] = []
        """(caller, stage, outcome, start_s, duration_s): a model is made when the page reads them, not per call."""
        self.dropped = 0

    def summary(self) -> RequestSummary:
        return RequestSummary(**self.fields)


class RecentRequests:
    """The last ``max_requests`` requests, each with at most ``max_calls`` stage calls (a loop cannot grow it)."""

    def __init__(self, *, max_requests: int = 100, max_calls: int = 256) -> None:
        self.max_requests = max_requests
        self.max_calls = max_calls
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def begin(self, request_id: str, pipeline: str) -> None:
        """A request of ``pipeline`` starts now (a reused id replaces the older record)."""
        self._entries.pop(request_id, None)
        self._entries[request_id] = _Entry(request_id, pipeline, time.time(), time.perf_counter())
        while len(self._entries) > self.max_requests:
            self._entries.popitem(last=False)

    def stage_call(self, request_id: str, caller: str, stage: str, outcome: str, seconds: float) -> None:
        """A call of ``stage`` by ``caller`` ended now after ``seconds``; ignored for a request not begun here."""
        entry = self._entries.get(request_id)
        if entry is None:
            return
        entry.fields["calls"] += 1
        if len(entry.calls) >= self.max_calls:
            entry.dropped += 1
            return
        start = max(0.0, time.perf_counter() - seconds - entry.began)
        entry.calls.append((caller, stage, outcome, start, seconds))

    def finish(self, request_id: str, status: str) -> None:
        """The request ended with ``status`` (the HTTP status answered, or ``cancelled``)."""
        entry = self._entries.get(request_id)
        if entry is None:
            return
        entry.fields["status"] = status
        entry.fields["duration_s"] = time.perf_counter() - entry.began

    def recent(self) -> list[RequestSummary]:
        return [entry.summary() for entry in reversed(self._entries.values())]

    def waterfall(self, request_id: str) -> Waterfall | None:
        entry = self._entries.get(request_id)
        if entry is None:
            return None
        calls = [
            StageCallRecord(caller=caller, stage=stage, outcome=outcome, start_s=start, duration_s=seconds)
            for caller, stage, outcome, start, seconds in entry.calls
        ]
        return Waterfall(request=entry.summary(), calls=calls, dropped=entry.dropped)
