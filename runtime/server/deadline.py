"""A request's deadline: the time by which every stage and LLM call under it must be done.

It travels between pods as ``X-Request-Deadline: <Unix time in seconds>`` (stage calls, LLM calls);
a client may send it too, to ask for less time than the server's own limit, never for more. Inside a
process it is kept on the monotonic clock, so a wall-clock step cannot stretch it.

Example::

    deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER), limit_s=300)
    async with asyncio.timeout(deadline.bound(stage_timeout_s)):
        ...
"""

from __future__ import annotations

import math
import time

from grove_pipelines.sdk.invoke import current_invoker
from runtime.server.call_protocol import DEADLINE_HEADER
from runtime.server.errors import InvalidRequestError

__all__ = ["Deadline", "current_deadline"]


class Deadline:
    """An instant on the monotonic clock; :meth:`header` gives it as Unix time for the next hop."""

    __slots__ = ("_header", "at")

    def __init__(self, at: float) -> None:
        self.at = at
        self._header: str | None = None

    @classmethod
    def within(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds)

    @classmethod
    def from_header(cls, value: str | None, *, limit_s: float) -> Deadline:
        """The earlier of ``value`` (Unix seconds, from the caller) and ``limit_s`` from now.

        Raises:
            InvalidRequestError: ``value`` is not a finite number (400).
        """
        now = time.monotonic()
        at = now + limit_s
        if value is not None and value.strip():
            try:
                unix = float(value)
            except ValueError:
                unix = math.nan
            if not math.isfinite(unix):
                raise InvalidRequestError(f"{DEADLINE_HEADER} must be a Unix time in seconds", status=400)
            given = now + (unix - time.time())
            at = min(at, given)
        return cls(at)

    def remaining(self) -> float:
        """Seconds left (negative once past)."""
        return self.at - time.monotonic()

    def bound(self, timeout_s: float | None) -> float:
        """What a call may take: its own timeout, cut to what is left (at least a hair, so it fails fast)."""
        left = max(self.at - time.monotonic(), 0.001)  # remaining(), without a call
        return left if timeout_s is None else min(timeout_s, left)

    def header(self) -> str:
        """The deadline as Unix time, for ``X-Request-Deadline`` on the next hop (made once: every call under it carries the same)."""
        if self._header is None:
            self._header = f"{time.time() + self.remaining():.3f}"
        return self._header


def current_deadline() -> Deadline | None:
    """The deadline of the request being served in this context (None outside a request): its invoker's
    (``runtime.server.executor.RequestInvoker``), bound for the request's code and the tasks it starts."""
    deadline = getattr(current_invoker(), "deadline", None)
    return deadline if isinstance(deadline, Deadline) else None
