"""Running the router: uvicorn (httptools, uvloop if installed) around :class:`RouterApp`, draining on stop.

On SIGTERM or SIGINT the router stops accepting connections, marks itself draining (``/ready``
answers 503), lets in-flight requests finish for up to ``drain_timeout`` seconds, closes its
upstream pools and exits 0. In tests, :class:`RouterServer` runs inside the caller's event loop on
a socket bound to an ephemeral port.

Example::

    server = RouterServer(load_config(overrides={"decode": [d], "prefill": [p]}))
    await server.start()          # binds 127.0.0.1:<free port> unless config.port is set
    ... server.url ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from runtime.http.listener import bind_socket  # the layer's: TCP_NODELAY on every accepted socket
from runtime.router.app import RouterApp
from runtime.router.config import RouterConfig
from runtime.router.core import Router
from runtime.router.discovery import Discovery
from runtime.router.http_guard import guarded_protocol

__all__ = ["RouterServer", "bind_socket", "run"]

log = logging.getLogger("grove.router")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the router installs its own, to drain and exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class RouterServer:
    """The router, its discovery and its HTTP server, started and stopped together."""

    def __init__(self, config: RouterConfig, *, discovery_kwargs: dict[str, Any] | None = None) -> None:
        self.config = config
        self.router = Router(config)
        self.app = RouterApp(self.router)
        self.discovery = Discovery(config.discovery, self.router.set_members, **(discovery_kwargs or {}))
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = config.port

    @property
    def url(self) -> str:
        """``http://host:port`` of the running router."""
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self.port}"

    async def start(self, sock: socket.socket | None = None) -> None:
        """Discover workers, check them once, then listen (on ``sock``, else the configured host and port)."""
        await self.discovery.start()
        try:
            await self.router.start()
        except BaseException:
            await self.discovery.stop()
            raise
        if sock is None:
            sock = bind_socket(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        uv_config = uvicorn.Config(
            self.app,
            lifespan="off",
            http=guarded_protocol(self.config.limits),
            loop="none",
            log_level=self.config.log_level,
            access_log=False,
            server_header=False,
            date_header=False,
            backlog=2048,
            timeout_graceful_shutdown=int(self.config.drain_timeout) or None,
            timeout_keep_alive=5,
        )
        self._server = _Uvicorn(uv_config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="router-http")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what made it stop
                raise RuntimeError("the HTTP server stopped during startup")
            await asyncio.sleep(0.01)

    def drain(self) -> None:
        """Begin the graceful stop: refuse new connections, finish in-flight requests."""
        self.router.draining = True
        if self._server is not None:
            self._server.should_exit = True

    async def wait(self) -> None:
        """Wait until the HTTP server has stopped, then release everything."""
        if self._task is not None:
            await self._task
        await self.discovery.stop()
        await self.router.close()

    async def stop(self) -> None:
        """:meth:`drain` and :meth:`wait`."""
        self.drain()
        await self.wait()


def run(config: RouterConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (the CLI entry): uvloop if installed, drain on signal, exit normally."""
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        server = RouterServer(config)
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.drain)
        if on_ready is not None:
            on_ready(server.url)
        await server.wait()

    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
