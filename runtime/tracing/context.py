"""W3C trace context: the ``traceparent`` header, parsed strictly, and the span a task is running under.

Every byte of an incoming header is hostile: only the exact ``00-<32 hex>-<16 hex>-<2 hex>`` form
with non-zero ids is taken; anything else is ignored (a fresh trace starts), never an error. The
current span lives in a context variable, so it follows ``await`` and the tasks a request creates.
"""

from __future__ import annotations

import re
from contextvars import ContextVar, Token

__all__ = [
    "TRACEPARENT",
    "SpanContext",
    "current",
    "format_traceparent",
    "parse_traceparent",
    "reset_current",
    "set_current",
]

TRACEPARENT = "traceparent"
"""The W3C header name (lowercase, as vLLM looks it up)."""

_FORM = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


class SpanContext:
    """What crosses a process boundary: trace id, span id (hex) and the sampled flag."""

    __slots__ = ("sampled", "span_id", "trace_id")

    def __init__(self, trace_id: str, span_id: str, sampled: bool) -> None:
        self.trace_id, self.span_id, self.sampled = trace_id, span_id, sampled


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The remote parent a ``traceparent`` value names; None when absent or not exactly W3C version 00."""
    if not value or len(value) != 55:
        return None
    match = _FORM.fullmatch(value)
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_SPAN:
        return None
    return SpanContext(match[1], match[2], bool(int(match[3], 16) & 1))


def format_traceparent(ctx: SpanContext) -> str:
    """The ``traceparent`` value that makes ``ctx`` the parent of the callee's spans."""
    return f"00-{ctx.trace_id}-{ctx.span_id}-{'01' if ctx.sampled else '00'}"


_CURRENT: ContextVar[SpanContext | None] = ContextVar("grove_current_span", default=None)


def current() -> SpanContext | None:
    """The span (or remote parent) the running code is under, if any (a span of no trace is none)."""
    ctx = _CURRENT.get()
    return ctx if ctx is not None and ctx.trace_id else None


def set_current(ctx: SpanContext | None) -> Token[SpanContext | None]:
    """Make ``ctx`` the current span; :func:`reset_current` with the token restores the previous one."""
    return _CURRENT.set(ctx)


def reset_current(token: Token[SpanContext | None]) -> None:
    """Undo a :func:`set_current`."""
    _CURRENT.reset(token)
