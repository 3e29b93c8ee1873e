"""Serving a :class:`~runtime.server.app.PipelineApp` on ``runtime.http``'s listener, on a socket we bind.

``serve_forever`` is what ``grove-pipelines serve`` and ``run`` call; ``AppServer`` runs the same
server inside an event loop that is already running (tests, benchmarks). Binding first means port 0
works and the real port is known. On SIGTERM (or SIGINT) the server drains: new requests get 503
and ``/ready`` goes 503 (the pod leaves its Service) while requests in flight finish, for up to the
settings' ``drain_s`` (inside the pod's grace period); a second signal cuts them. Then it stops.

Example::

    async with AppServer(app) as server:       # 127.0.0.1, a free port
        print(server.url)
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from runtime import tracing
from runtime.http import HttpServer, bind_socket, gc_tuning
from runtime.server.app import PipelineApp

__all__ = ["AppServer", "bind_socket", "serve_forever"]  # bind_socket: the layer's, for the entry points

log = logging.getLogger("grove_pipelines.server")

_STOP_GRACE_S = 5.0  # a plain stop (not a drain): how long requests in flight may take to finish


class AppServer:
    """``app`` served on ``sock`` (else a new socket on ``host:port``) in the running event loop."""

    def __init__(
        self, app: PipelineApp, *, sock: socket.socket | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = app
        self.sock = sock if sock is not None else bind_socket(host, port)
        self.http = HttpServer(app, app.limits, refusal=app.refusal)
        name = self.sock.getsockname()
        self.port = int(name[1])
        shown = "127.0.0.1" if name[0] in ("0.0.0.0", "") else str(name[0])
        self.url = f"http://[{shown}]:{self.port}" if ":" in shown else f"http://{shown}:{self.port}"
        self._running = False

    async def start(self) -> Self:
        """Make the app's class stages, then accept connections (they wait in the backlog until then)."""
        await self.app.start()
        await self.http.start(self.sock)
        self._running = True
        return self

    async def drain(self) -> None:
        """What SIGTERM does to a served pod: 503 to new requests, wait for the ones in flight, stop."""
        self.app.gate.start_draining()
        log.warning(
            "draining: %d connection(s) open, up to %g s",
            len(self.http.connections),
            self.app.settings.drain_s,
        )
        await self._stop(self.app.settings.drain_s, keep_listening=True)

    async def stop(self, timeout: float = _STOP_GRACE_S) -> None:
        """Stop listening; requests in flight get ``timeout`` seconds to finish, then are cut."""
        await self._stop(timeout, keep_listening=False)

    async def _stop(self, timeout: float, *, keep_listening: bool) -> None:
        if self._running:
            await self.http.stop(timeout, keep_listening=keep_listening)
            if self.http.connections:
                log.warning("stop: %d connection(s) cut", len(self.http.connections))
            self._running = False
        self.sock.close()
        await self.app.aclose()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def _serve_until_signal(server: AppServer) -> None:
    """Serve until the first SIGTERM/SIGINT, drain, stop; a second signal cuts the drain short."""
    loop = asyncio.get_running_loop()
    signals = asyncio.Queue[int]()
    handled = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
    for sig in handled:
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    try:
        starting = asyncio.ensure_future(server.start())
        first = asyncio.ensure_future(signals.get())
        await asyncio.wait((starting, first), return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # stopped while the class stages were still being made
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await server.stop(0)
            return
        starting.result()
        gc_tuning.settle()  # a long-running server from here: what startup made stays; rarer collections
        await first
        draining = asyncio.ensure_future(server.drain())
        second = asyncio.ensure_future(signals.get())
        await asyncio.wait((draining, second), return_when=asyncio.FIRST_COMPLETED)
        second.cancel()
        if not draining.done():
            draining.cancel()
            await asyncio.gather(draining, return_exceptions=True)
            await server.stop(0)
        else:
            draining.result()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when it is installed (it serves more requests per core), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def serve_forever(app: PipelineApp, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM, drain, then return (a clean stop, exit status 0)."""
    tracing.configure("grove-pipeline-server" if app.served else "grove-stage-server")
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve_until_signal(AppServer(app, sock=sock)))
    finally:
        tracing.flush()
