"""A time limit on a block of a task: ``asyncio.timeout``'s behaviour for a fraction of its cost.

``asyncio.timeout`` arms a timer handle as its block begins and cancels it as the block ends; under
uvloop that makes and closes a libuv timer each time, about half of the 5 us a block costs, and one
pipeline run with a stage call passes three such blocks (the run's deadline, the call's timeout, the
stage server's deadline). Here the limits of one loop wait in one heap under one timer handle,
re-armed only for a limit earlier than every pending one (the usual limit, minutes away and later
than the ones before it, is a push), and a block that ends in time only says so (the heap drops
ended limits when its handle fires, or in one sweep once they are most of it).

What happens at the limit is ``asyncio.timeout``'s: the task is cancelled, and the block raises
``TimeoutError`` unless the task was also cancelled for another reason, which then goes on. The block
is a plain ``with``: entering and leaving need no ``await``.

Example::

    limit = TimeLimit(deadline.bound(timeout_s))
    try:
        with limit:
            return await call()
    except Exception:
        if limit.expired():
            ...  # the limit ended it
"""

from __future__ import annotations

import asyncio
import itertools
from asyncio import current_task, get_running_loop
from heapq import heapify, heappop, heappush
from types import TracebackType
from typing import Self

__all__ = ["TimeLimit"]

_CREATED, _ENTERED, _EXPIRING, _EXPIRED, _EXITED = range(5)
_RESOLUTION = 0.001
"""A limit this close to the loop's clock is due (uvloop's clock counts milliseconds; asyncio's own
loop runs a timer as early as its clock's resolution too)."""
_SWEEP_AFTER = 256  # ended limits a heap keeps before a sweep is worth its pass


class _Pending:
    """The entered limits of one loop, earliest first, under one timer handle."""

    __slots__ = ("_armed_at", "_ended", "_handle", "_heap", "_loop", "_order")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, TimeLimit]] = []
        self._order = itertools.count()  # equal instants: the first entered is the first due
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = float("inf")
        self._ended = 0  # limits in the heap whose block ended in time

    # A limit enters and ends its block with no call into this class on the usual path (a Python
    # frame each costs as much as the rest of the bookkeeping): TimeLimit pushes onto the heap and
    # counts what ended itself, and calls here only to re-arm the handle or to sweep.
    def arm(self, when: float) -> None:
        """A limit due before every pending one was pushed: the handle fires at ``when``."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._fire)
        self._armed_at = when

    def sweep(self) -> None:
        """Ended limits are most of the heap: drop them."""
        heap = self._heap
        heap[:] = [entry for entry in heap if entry[2].state == _ENTERED]
        heapify(heap)
        self._ended = 0

    def _fire(self) -> None:
        self._handle, self._armed_at = None, float("inf")
        heap = self._heap
        due = self._loop.time() + _RESOLUTION
        while heap and heap[0][0] <= due:
            limit = heappop(heap)[2]
            if limit.state == _ENTERED:
                limit.expire()
            else:
                self._ended -= 1
        if heap:
            self._armed_at = heap[0][0]
            self._handle = self._loop.call_at(self._armed_at, self._fire)


_LAST: tuple[asyncio.AbstractEventLoop | None, _Pending | None] = (None, None)
"""The loop last seen and its limits (read as one tuple: another thread's loop only replaces it)."""


def _pending(loop: asyncio.AbstractEventLoop) -> _Pending:
    global _LAST
    seen, pending = _LAST
    if seen is not loop or pending is None:
        pending = _Pending(loop)
        _LAST = (loop, pending)
    return pending


class TimeLimit:
    """``with TimeLimit(seconds):`` cancels the block's task once ``seconds`` pass (from entering);
    the block then raises ``TimeoutError``. ``None``: no limit (the block still tells :meth:`expired`).
    :meth:`until` limits a block to an instant of the loop's clock instead (``asyncio.timeout_at``)."""

    __slots__ = ("_at", "_cancelling", "_delay", "_pending", "_task", "state")

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._at: float | None = None
        self._task: asyncio.Task[object] | None = None
        self._pending: _Pending | None = None
        self._cancelling = 0
        self.state = _CREATED

    @classmethod
    def until(cls, when: float) -> TimeLimit:
        """A limit at ``when`` on the loop's clock (``loop.time()``), whenever the block is entered."""
        limit = cls(None)
        limit._at = when
        return limit

    def expired(self) -> bool:
        """Whether the limit passed while the block ran (so a ``TimeoutError`` or a cancellation came from it)."""
        return self.state == _EXPIRING or self.state == _EXPIRED

    def __enter__(self) -> Self:
        if self.state != _CREATED:
            raise RuntimeError("a TimeLimit is entered once")
        loop = get_running_loop()
        task = current_task(loop)
        if task is None:
            raise RuntimeError("a TimeLimit needs a task")
        self._task = task
        self._cancelling = task.cancelling()
        self.state = _ENTERED
        now = loop.time()
        when = self._at if self._delay is None else now + self._delay
        if when is not None:
            if when <= now:  # passed already: at the loop's next turn, as asyncio.timeout does
                loop.call_soon(self._due)
            else:
                seen, pending = _LAST
                if seen is not loop or pending is None:
                    pending = _pending(loop)
                self._pending = pending
                entry: tuple[float, int, TimeLimit] = (when, next(pending._order), self)
                heappush(pending._heap, entry)
                if when < pending._armed_at:
                    pending.arm(when)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        state, task = self.state, self._task
        self._task = None  # the heap may keep this object a while: not the task with it
        if state == _ENTERED:
            self.state = _EXITED
            pending = self._pending
            if pending is not None:  # in the heap until it is due or swept
                ended = pending._ended = pending._ended + 1
                if ended > _SWEEP_AFTER and ended * 2 > len(pending._heap):
                    pending.sweep()
        elif state == _EXPIRING:
            self.state = _EXPIRED
            assert task is not None
            if task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
                raise TimeoutError from exc  # the limit's own cancellation, and no one else's

    def _due(self) -> None:
        if self.state == _ENTERED:
            self.expire()

    def expire(self) -> None:
        """The limit passed while the block runs: cancel its task (the block's exit tells why)."""
        assert self._task is not None
        self._task.cancel()
        self.state = _EXPIRING
