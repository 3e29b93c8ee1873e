"""Bounded waiting for tests: every poll has a deadline, so a regression fails instead of hanging ``make test``.

Example::

    await eventually(lambda: worker.completions(), what="the worker saw the request")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

__all__ = ["connect_when_listening", "eventually", "eventually_sync"]

DEFAULT_TIMEOUT = 15.0


def _polls(predicate: Callable[[], object], timeout: float, what: str) -> Iterator[None]:
    """One step per failed poll of ``predicate``; ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or predicate}")
        yield


async def eventually(
    predicate: Callable[[], object],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    what: str = "",
) -> None:
    """Poll ``predicate`` until it is truthy, at most ``timeout`` seconds."""
    for _ in _polls(predicate, timeout, what):
        await asyncio.sleep(interval)


def eventually_sync(
    predicate: Callable[[], object],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    what: str = "",
) -> None:
    """:func:`eventually` for synchronous tests (sleeps between polls instead of spinning)."""
    for _ in _polls(predicate, timeout, what):
        time.sleep(interval)


async def connect_when_listening(
    port: int, *, host: str = "127.0.0.1", timeout: float = 5.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host:port`` once something listens there (a server still starting refuses it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listened on {host}:{port} within {timeout:g} s") from None
            await asyncio.sleep(0.01)
