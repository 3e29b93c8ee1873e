"""Spans: started under the current one (or a remote parent), ended once, then kept and exported.

A span is a small slotted object; nothing is formatted until someone reads the store or the OTLP
exporter batches it. A span that is not sampled still gets ids, so ``traceparent`` carries on (with
the sampled flag off) and the callees agree not to record either. When this process records nothing
(no exporter, no store: the default), :func:`start_span` makes a :class:`NonRecordingSpan` instead: it
carries its parent's context unchanged, so callees continue the caller's trace, and costs a request
almost nothing; callers skip building attributes when ``span.recording`` is false.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextvars import Token
from types import TracebackType
from typing import Literal, Self

from runtime.tracing.context import SpanContext, current, format_traceparent, reset_current, set_current
from runtime.tracing.settings import TracingSettings
from runtime.tracing.store import store

__all__ = ["Attribute", "NonRecordingSpan", "Span", "current_traceparent", "settings", "start_span"]

Attribute = str | int | float | bool
Kind = Literal["internal", "server", "client"]

_bits = random.getrandbits
_SETTINGS: list[TracingSettings] = [TracingSettings()]
_SINKS: list[Callable[[Span], None]] = []  # besides the store: the OTLP exporter when configured


def settings() -> TracingSettings:
    """This process's tracing settings (see :func:`runtime.tracing.configure`)."""
    return _SETTINGS[0]


class Span(SpanContext):
    """One timed operation. Use as ``with start_span(...) as span:`` (current inside), or call :meth:`end`."""

    __slots__ = (
        "_token",
        "attributes",
        "end_ns",
        "kind",
        "name",
        "parent_id",
        "service",
        "start_ns",
        "status",
        "status_message",
    )

    def __init__(
        self,
        name: str,
        trace_id: str,
        parent_id: str | None,
        sampled: bool,
        kind: Kind,
        service: str,
        attributes: dict[str, Attribute] | None,
    ) -> None:
        super().__init__(trace_id, f"{_bits(64) or 1:016x}", sampled)
        self.name, self.parent_id, self.kind, self.service = name, parent_id, kind, service
        self.attributes: dict[str, Attribute] = attributes if attributes is not None else {}
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.status: Literal["ok", "error", "unset"] = "unset"
        self.status_message: str | None = None
        self._token: Token[SpanContext | None] | None = None

    @property
    def recording(self) -> bool:
        """Whether this span is kept (so attributes are worth computing)."""
        return self.sampled

    def set(self, key: str, value: Attribute | None) -> None:
        """Set an attribute (None: leave it unset)."""
        if value is not None:
            self.attributes[key] = value

    def fail(self, message: str) -> None:
        """Mark the span failed with a short, client-safe ``message``."""
        self.status, self.status_message = "error", message[:256]

    def end(self) -> None:
        """Finish the span (once); a sampled span goes to the store and the exporter."""
        if self.end_ns:
            return
        self.end_ns = time.time_ns()
        if self.status == "unset":
            self.status = "ok"
        if self.sampled:
            store().add(self)
            for sink in _SINKS:
                sink(self)

    def __enter__(self) -> Self:
        self._token = set_current(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            reset_current(self._token)
            self._token = None
        if exc is not None and self.recording and self.status != "error":
            self.fail(
                "cancelled" if kind is not None and not issubclass(kind, Exception) else type(exc).__name__
            )
        self.end()


class NonRecordingSpan(Span):
    """A span this process does not record: its parent's context (nothing, without one), ended by no one."""

    __slots__ = ()

    def __init__(self, parent: SpanContext | None) -> None:  # not Span's: nothing to time or keep
        if parent is None:
            SpanContext.__init__(self, "", "", False)  # no trace: current() is None under it
        else:
            SpanContext.__init__(self, parent.trace_id, parent.span_id, parent.sampled)
        self._token = None

    recording = False  # a constant, read on every request: no property call

    def set(self, key: str, value: Attribute | None) -> None:
        pass

    def fail(self, message: str) -> None:
        pass

    def end(self) -> None:
        pass


class _NoTrace(NonRecordingSpan):
    """The span of no trace while nothing records. Under it, as under its caller, :func:`current` is
    None, so entering it changes nothing and keeps no token: one instance serves every task at once."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass


_NO_TRACE = _NoTrace(None)
"""What :func:`start_span` returns with no parent while nothing records (no object per request)."""


def start_span(
    name: str,
    attributes: dict[str, Attribute] | None = None,
    *,
    parent: SpanContext | None = None,
    kind: Kind = "internal",
) -> Span:
    """A new span under ``parent`` (default: the current span; none: a new trace). Not current until entered.

    A :class:`NonRecordingSpan` when this process records nothing (``attributes`` are then dropped).
    """
    parent = parent or current()
    if parent is not None and not parent.trace_id:  # the span of no trace: no parent
        parent = None
    config = _SETTINGS[0]
    if not config.records:
        return NonRecordingSpan(parent) if parent is not None else _NO_TRACE
    if parent is None:
        trace_id = f"{_bits(128) or 1:032x}"
        return Span(name, trace_id, None, config.sample(trace_id, None), kind, config.service, attributes)
    sampled = config.sample(parent.trace_id, parent.sampled)
    return Span(name, parent.trace_id, parent.span_id, sampled, kind, config.service, attributes)


def current_traceparent() -> str | None:
    """The ``traceparent`` an outgoing call carries: the current span's, if there is one."""
    ctx = current()
    return None if ctx is None else format_traceparent(ctx)
