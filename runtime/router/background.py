"""One background asyncio task that a router component runs until stopped (health checks, scrapes, probes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["Background"]


class Background:
    """Start a loop once, cancel it and wait for it on stop; starting twice or stopping twice is harmless."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the loop has been started and not stopped."""
        return self._task is not None

    def start(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``loop()`` as a task, unless one is already running."""
        if self._task is None:
            self._task = asyncio.create_task(loop(), name=self.name)

    def repeat(
        self,
        action: Callable[[], Awaitable[object]],
        interval: float,
        *,
        log: logging.Logger,
        failed: str,
        wait_first: bool = False,
    ) -> None:
        """Run ``action()`` every ``interval`` seconds (after one wait first, with ``wait_first``).

        A round that fails is logged (``failed``, with its traceback) and the rounds go on: a bug in one
        scrape or probe must not stop them for good.
        """

        async def rounds() -> None:
            if wait_first:
                await asyncio.sleep(interval)
            while True:
                try:
                    await action()
                except Exception:
                    log.exception(failed)
                await asyncio.sleep(interval)

        self.start(rounds)

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
