"""Discovery without API access: probe the stable DNS names Grove gives a clique's pods.

Pod indices are the lowest free integers (grove-api notes §4.2), so probing k = 0, 1, 2, ... finds
them all; probing stops after two names in a row that do not resolve (one gap is tolerated while a
pod is being replaced). The headless service publishes pods that are not ready yet, so a name that
resolves is only a candidate: the router's health checks decide whether it serves.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from runtime.router.background import Background

__all__ = ["DnsProber", "Resolver"]

log = logging.getLogger("grove.router.discovery")

Resolver = Callable[[str, int], Awaitable[bool]]
"""Answers whether a host name resolves (the default asks the system resolver)."""


async def _system_resolves(host: str, port: int) -> bool:
    try:
        await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return True


class DnsProber:
    """Re-probes ``name_for(k)`` every ``interval`` seconds and reports the resolvable ones as URLs."""

    def __init__(
        self,
        *,
        name_for: Callable[[int], str],
        port: int,
        on_change: Callable[[list[str]], None],
        scheme: str = "http",
        interval: float = 10.0,
        max_pods: int = 64,
        resolver: Resolver = _system_resolves,
    ) -> None:
        self._name_for, self._port, self._on_change = name_for, port, on_change
        self._scheme, self._interval, self._max = scheme, interval, max_pods
        self._resolves = resolver
        self._last: list[str] | None = None
        self._background = Background("router-dns-discovery")

    async def probe(self) -> list[str]:
        """One pass: the URLs of the names that resolve now (also reported if they changed)."""
        urls, misses = [], 0
        for k in range(self._max):
            name = self._name_for(k)
            if await self._resolves(name, self._port):
                urls.append(f"{self._scheme}://{name}:{self._port}")
                misses = 0
            else:
                misses += 1
                if misses >= 2:
                    break
        if urls != self._last:
            self._last = urls
            self._on_change(urls)
        return urls

    def start(self) -> None:
        """Probe now and then every ``interval`` seconds, in the background."""
        self._background.start(self._run)

    async def stop(self) -> None:
        """Stop probing."""
        await self._background.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:
                log.exception("DNS probe failed")
            await asyncio.sleep(self._interval)
