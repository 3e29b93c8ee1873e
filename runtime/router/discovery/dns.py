"""Discovery without API access: probe the stable DNS names Grove gives a clique's pods.

Pod indices are the lowest free integers (grove-api notes §4.2), so probing k = 0, 1, 2, ... finds
them all; probing stops after two names in a row that do not resolve (one gap is tolerated while a
pod is being replaced). The headless service publishes pods that are not ready yet, so a name that
resolves is only a candidate: the router's health checks decide whether it serves.

Only an authoritative "no such name" counts as a missing pod. A resolver that times out, fails
(SERVFAIL) or is unreachable gives no answer at all, and a pass with any such non-answer keeps the
last good set: a DNS hiccup must not look like "every pod is gone".
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from runtime.router.background import Background

__all__ = ["DnsProber", "Resolver"]

log = logging.getLogger("grove.router.discovery")

Resolver = Callable[[str, int], Awaitable[bool | None]]
"""Whether a host name resolves: True, False (authoritatively not), None (no answer; the default asks
the system resolver)."""

_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


async def _system_resolves(host: str, port: int) -> bool | None:
    try:
        await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:
        return False
    except socket.gaierror as exc:
        return False if exc.errno in _NO_SUCH_NAME else None  # EAI_AGAIN, EAI_FAIL, ...: no answer
    except OSError:
        return None
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
        """One pass: the URLs of the names that resolve now (also reported if they changed).

        A name the resolver gave no answer for keeps its last known state: a pod already known stays,
        an unknown name stays absent. So a resolver hiccup removes nothing, and a resolver that never
        answers for absent names (no DNS server, only a hosts file) still finds the present ones.
        """
        known = set(self._last or ())
        urls, misses = [], 0
        for k in range(self._max):
            name = self._name_for(k)
            url = f"{self._scheme}://{name}:{self._port}"
            answer = await self._resolves(name, self._port)
            if answer is None and url in known:
                log.warning("DNS gave no answer for %s; keeping it as a known pod", name)
            present = url in known if answer is None else answer
            if present:
                urls.append(url)
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
        self._background.repeat(self.probe, self._interval, log=log, failed="DNS probe failed")

    async def stop(self) -> None:
        """Stop probing."""
        await self._background.stop()
