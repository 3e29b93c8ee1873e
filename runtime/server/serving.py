"""Running the app with uvicorn: on a socket we bind ourselves, so port 0 works and the real port is known.

``serve_forever`` is what ``grove-pipelines serve`` and ``run`` call (uvicorn handles SIGINT/SIGTERM);
``AppServer`` runs the same server as a task of the current loop (tests, benchmarks).

Example::

    async with AppServer(app) as server:       # 127.0.0.1, a free port
        print(server.url)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn

__all__ = ["AppServer", "bind_socket", "serve_forever", "uvicorn_config"]


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket (``port=0``: the OS picks a free one; read it from ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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


def serve_forever(app: Any, sock: socket.socket, **options: Any) -> None:
    """Serve until SIGINT or SIGTERM, shut down gracefully, then leave with ``SystemExit(0)``.

    uvicorn handles the signal while it serves and re-raises it once it has stopped; the handler
    set here turns that into a normal exit (status 0, as Kubernetes expects from a clean stop).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _exit_zero)
        signal.signal(signal.SIGTERM, _exit_zero)
    uvicorn.Server(uvicorn_config(app, **options)).run(sockets=[sock])


class _EmbeddedServer(uvicorn.Server):
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
