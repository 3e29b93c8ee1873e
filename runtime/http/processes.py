"""Several processes on one port (``SO_REUSEPORT``): the kernel spreads new connections across them.

One Python process tops out at one core. :class:`ProcessGroup` reserves a port in the parent (bound
with ``SO_REUSEPORT`` but never listening, so the kernel sends it no connections), then starts
``count`` processes that each bind and listen on that port and run ``target(sock)`` (or
``target(sock, index)``, ``index`` from 0, with ``indexed``). Whatever state the processes must
agree on is the caller's to share or to make unnecessary.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from runtime.http.listener import bind_socket

__all__ = ["ProcessGroup"]

Target = Callable[..., None]


def _child(target: Target, host: str, port: int, backlog: int, index: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (SIGTERM)
    sock = bind_socket(host, port, reuse_port=True, backlog=backlog)
    if index is None:
        target(sock)
    else:
        target(sock, index)


class ProcessGroup:
    """``count`` processes serving one ``host:port``; :meth:`stop` sends SIGTERM and waits (bounded)."""

    def __init__(
        self,
        target: Target,
        count: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        backlog: int = 2048,
        indexed: bool = False,
    ):
        if count < 1:
            raise ValueError("count must be at least 1")
        self._target, self._count, self._backlog, self._indexed = target, count, backlog, indexed
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._reserved = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._reserved.bind((host, port))  # holds the port; not listening, so it takes no connections
        self.host = host
        self.port: int = self._reserved.getsockname()[1]
        self.processes: list[BaseProcess] = []

    def start(self) -> None:
        """Start the processes (``spawn``: no event loop or lock is inherited from the parent)."""
        context = multiprocessing.get_context("spawn")
        for index in range(self._count):
            args = (self._target, self.host, self.port, self._backlog, index if self._indexed else None)
            proc = context.Process(target=_child, args=args, daemon=True)
            proc.start()
            self.processes.append(proc)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process, wait up to ``timeout`` s each, then kill what is left; free the port."""
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()
        for proc in self.processes:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)
        self._reserved.close()
