"""Concurrency limit with a bounded queue: beyond the queue 429, after the wait 503, both with Retry-After."""

from __future__ import annotations

import asyncio

from runtime.router.config import LimitsConfig

__all__ = ["Admission", "Rejected"]


class Rejected(Exception):
    """The request cannot be admitted; ``status`` is 429 (queue full) or 503 (waited too long)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Admission:
    """:meth:`acquire` a slot per request, :meth:`release` it once when the request ends."""

    def __init__(self, config: LimitsConfig) -> None:
        self.config = config
        self._sem = asyncio.Semaphore(config.max_concurrent) if config.max_concurrent else None
        self.waiting = 0
        self.active = 0

    def admit_now(self) -> bool:
        """Take a slot at once when there is no limit (a sidecar's default); False: :meth:`acquire` one.

        The unlimited case needs no coroutine made and awaited per request.
        """
        if self._sem is None:
            self.active += 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot, or raise :class:`Rejected`."""
        if self.admit_now():
            return
        assert self._sem is not None
        if self._sem.locked():
            if self.waiting >= self.config.queue_size:
                raise Rejected(
                    429, f"too many requests: {self.config.max_concurrent} running and {self.waiting} waiting"
                )
            self.waiting += 1
            try:
                await asyncio.wait_for(self._sem.acquire(), self.config.queue_timeout)
            except TimeoutError:
                raise Rejected(
                    503, f"no capacity: waited {self.config.queue_timeout:g} s for a slot"
                ) from None
            finally:
                self.waiting -= 1
        else:
            await self._sem.acquire()
        self.active += 1

    def release(self) -> None:
        """Give the slot back."""
        self.active -= 1
        if self._sem is not None:
            self._sem.release()
