"""One deadline at a time on one timer handle: moving it later is an attribute write, not a new timer.

A keep-alive connection sets a deadline several times per request (the listener: header, body,
idle; the upstream client: each wait for the worker's bytes). Arming and cancelling a timer handle
for each was a tenth of a proxied request's CPU. Here a later deadline only moves an attribute; the
pending handle, when it fires early, re-arms itself for the deadline then in force, and only a
deadline that has really passed calls ``on_expiry``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LazyTimer"]


class LazyTimer:
    """Calls ``on_expiry`` once the deadline last :meth:`arm`-ed passes, unless disarmed first."""

    __slots__ = ("_handle", "_loop", "_on_expiry", "deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expiry = on_expiry
        self._handle: asyncio.TimerHandle | None = None
        self.deadline: float | None = None

    def arm(self, deadline: float) -> None:
        """Make ``deadline`` (the loop's clock) the one in force."""
        self.deadline = deadline
        handle = self._handle
        if handle is not None:
            if handle.when() <= deadline:
                return  # it fires first and re-arms for this deadline
            handle.cancel()
        self._handle = self._loop.call_at(deadline, self._fire)

    def disarm(self) -> None:
        """No deadline in force (the pending handle, if any, fires and finds none)."""
        self.deadline = None

    def cancel(self) -> None:
        """No deadline, and no pending handle (the owner is going away)."""
        self.deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        deadline = self.deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._handle = self._loop.call_at(deadline, self._fire)
            return
        self.deadline = None
        self._on_expiry()
