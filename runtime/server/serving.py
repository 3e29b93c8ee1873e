"""Running the app with uvicorn: on a socket we bind ourselves, so port 0 works and the real port is known.

``serve_forever`` is what ``grove-pipelines serve`` and ``run`` call; ``AppServer`` runs the same
server as a task of the current loop (tests, benchmarks).

SIGTERM drains: the app's gate answers 503 to new requests (and ``/ready`` turns 503) while the ones
in flight finish, for up to the settings' ``drain_s`` (inside the pod's grace period); then uvicorn
stops. A second SIGINT stops at once.

Example::

    async with AppServer(app) as server:       # 127.0.0.1, a free port
        print(server.url)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn

__all__ = ["AppServer", "DrainingServer", "bind_socket", "serve_forever", "uvicorn_config"]

log = logging.getLogger("grove_pipelines.server")


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket (``port=0``: the OS picks a free one; read it from ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: stock asyncio turns Nagle off only on sockets that say they are TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, **options: Any) -> uvicorn.Config:
    """uvicorn settings for the pipeline server: uvloop/httptools when present, no access log, long keep-alive."""
    defaults: dict[str, Any] = {
        "access_log": False, "log_level": "warning", "timeout_keep_alive": 75, "lifespan": "on",
        "timeout_graceful_shutdown": 5,
    }
    return uvicorn.Config(app, **{**defaults, **options})


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


class DrainingServer(uvicorn.Server):
    """uvicorn that, on the first SIGTERM/SIGINT, drains the app's gate before it stops serving.

    An app without a gate (``app.state.gate``) stops as plain uvicorn does.
    """

    def __init__(self, config: uvicorn.Config, *, drain_s: float | None = None) -> None:
        super().__init__(config)
        state = getattr(config.app, "state", None)
        self.gate = getattr(state, "gate", None)
        settings = getattr(state, "settings", None)
        self.drain_s = drain_s if drain_s is not None else float(getattr(settings, "drain_s", 0.0))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.gate is None or self.gate.draining or self._loop is None:
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)
        self._loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        """Start draining (idempotent); the server stops once idle or after ``drain_s``."""
        if self.gate is None:
            self.should_exit = True
            return
        if self._drain_task is None:
            self.gate.start_draining()
            self._drain_task = asyncio.ensure_future(self._stop_when_idle())

    async def _stop_when_idle(self) -> None:
        assert self.gate is not None
        log.warning("draining: %d request(s) in flight, up to %g s", self.gate.in_flight, self.drain_s)
        if not await self.gate.wait_idle(self.drain_s):
            log.warning("drain time over with %d request(s) still in flight", self.gate.in_flight)
        self.should_exit = True


def serve_forever(app: Any, sock: socket.socket, **options: Any) -> None:
    """Serve until SIGINT or SIGTERM, shut down gracefully, then leave with ``SystemExit(0)``.

    uvicorn handles the signal while it serves and re-raises it once it has stopped; the handler
    set here turns that into a normal exit (status 0, as Kubernetes expects from a clean stop).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _exit_zero)
        signal.signal(signal.SIGTERM, _exit_zero)
    DrainingServer(uvicorn_config(app, **options)).run(sockets=[sock])


class _EmbeddedServer(DrainingServer):
    """uvicorn without signal handling: signals belong to whoever runs the loop (pytest, a benchmark)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AppServer:
    """A uvicorn server running as a task in the current event loop, on 127.0.0.1 and a free port."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.sock = bind_socket(host, port)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self.server = _EmbeddedServer(uvicorn_config(app, **options))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Self:
        """Start serving; returns once the server accepts connections."""
        self._task = asyncio.ensure_future(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def drain(self) -> None:
        """What SIGTERM does to a served pod: 503 to new requests, wait for the ones in flight, stop."""
        self.server.drain()
        if self._task is not None:
            await self._task
            self._task = None
        self.sock.close()

    async def stop(self) -> None:
        """Graceful shutdown (running requests finish within the configured grace)."""
        if self._task is not None:
            self.server.should_exit = True
            await self._task
            self._task = None
        self.sock.close()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
