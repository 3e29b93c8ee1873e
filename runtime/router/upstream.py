"""The router's client for its workers: the runtime's keep-alive pool, one per router.

Connections to each worker are kept alive and reused; idle ones are dropped before vLLM's own
keep-alive expires; every leg has connect and read timeouts (and ``total`` where given); closing a
reply early closes its socket, which makes vLLM abort the request. See :mod:`runtime.http.upstream`.
"""

from __future__ import annotations

from runtime.http.upstream import UpstreamPool, UpstreamReply

__all__ = ["Upstream", "UpstreamReply"]


class Upstream(UpstreamPool):
    """The pool under the name the router uses; :meth:`start` it in the event loop, :meth:`close` it at exit."""

    async def start(self) -> None:
        """Nothing to open ahead: connections are made on first use and pooled per worker."""
