"""The last traces of this process, kept in memory and bounded, for the pipeline server's page.

The in-process API other code reads (typed, pydantic): :func:`recent` lists the newest traces,
:func:`trace` gives one trace's spans. Only the spans *this* process recorded are here: a trace
that crossed into a stage server or a router has the rest of its spans in those processes (or in
the OTLP collector, when one is configured). It is off unless ``GROVE_TRACE_STORE_TRACES`` is set
(no server reads it; tests and in-process tools do). Recording is cheap (a finished span is appended to a
list); the pydantic models are built only when someone reads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from runtime.tracing.spans import Span

__all__ = ["SpanRecord", "TraceStore", "TraceSummary", "recent", "store", "trace"]

DEFAULT_TRACES = 200
MAX_SPANS_PER_TRACE = 1000


class SpanRecord(BaseModel):
    """One finished span. Ids are lowercase hex (W3C); times are Unix epoch nanoseconds."""

    model_config = ConfigDict(frozen=True)

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: Literal["internal", "server", "client"]
    start_ns: int
    end_ns: int
    attributes: dict[str, str | int | float | bool]
    status: Literal["ok", "error", "unset"]
    status_message: str | None = None
    service: str


class TraceSummary(BaseModel):
    """One trace as a row of a list: its first span's name, its extent and whether any span failed."""

    model_config = ConfigDict(frozen=True)

    trace_id: str
    name: str
    service: str
    start_ns: int
    end_ns: int
    spans: int
    error: bool


def _record(span: Span) -> SpanRecord:
    return SpanRecord(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_id=span.parent_id,
        name=span.name,
        kind=span.kind,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        attributes=dict(span.attributes),
        status=span.status,
        status_message=span.status_message,
        service=span.service,
    )


def _root(spans: list[Span]) -> Span:
    """The span whose parent is not in this process (the request's entry here), else the earliest."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_id not in ids]
    return min(roots or spans, key=lambda s: s.start_ns)


class TraceStore:
    """The newest ``max_traces`` traces (oldest dropped first), at most ``MAX_SPANS_PER_TRACE`` spans each (0: none)."""

    def __init__(self, max_traces: int = DEFAULT_TRACES) -> None:
        self.max_traces = max(0, max_traces)
        self._traces: OrderedDict[str, list[Span]] = OrderedDict()
        self._lock = threading.Lock()  # spans may end on a stage's worker thread
        self.dropped = 0

    def add(self, span: Span) -> None:
        """Keep a finished span."""
        if not self.max_traces:
            return
        with self._lock:
            spans = self._traces.get(span.trace_id)
            if spans is None:
                spans = self._traces[span.trace_id] = []
                if len(self._traces) > self.max_traces:
                    self._traces.popitem(last=False)
            if len(spans) < MAX_SPANS_PER_TRACE:
                spans.append(span)
            else:
                self.dropped += 1

    def recent(self, limit: int = 50) -> list[TraceSummary]:
        """The newest traces first (by when their first span here ended), at most ``limit``."""
        with self._lock:
            newest = (
                [list(spans) for spans in list(self._traces.values())[-max(0, limit) :]] if limit > 0 else []
            )
        out = []
        for spans in reversed(newest):
            root = _root(spans)
            out.append(
                TraceSummary(
                    trace_id=root.trace_id,
                    name=root.name,
                    service=root.service,
                    start_ns=min(s.start_ns for s in spans),
                    end_ns=max(s.end_ns for s in spans),
                    spans=len(spans),
                    error=any(s.status == "error" for s in spans),
                )
            )
        return out

    def trace(self, trace_id: str) -> list[SpanRecord] | None:
        """The spans of one trace recorded here, by start time; None when it is not (or no longer) kept."""
        with self._lock:
            spans = self._traces.get(trace_id)
            kept = None if spans is None else list(spans)
        if kept is None:
            return None
        return [_record(s) for s in sorted(kept, key=lambda s: s.start_ns)]

    def clear(self) -> None:
        """Forget every trace (tests)."""
        with self._lock:
            self._traces.clear()


_STORE: list[TraceStore] = [TraceStore(0)]


def store() -> TraceStore:
    """This process's store (resized by :func:`runtime.tracing.configure`)."""
    return _STORE[0]


def _replace(new: TraceStore) -> None:
    _STORE[0] = new


def recent(limit: int = 50) -> list[TraceSummary]:
    """The newest traces this process recorded, newest first."""
    return store().recent(limit)


def trace(trace_id: str) -> list[SpanRecord] | None:
    """The spans this process recorded for ``trace_id`` (None when not kept)."""
    return store().trace(trace_id)
