"""Running the router: the runtime's listener (httptools, uvloop if installed) around :class:`RouterApp`.

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
import functools
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait as mp_wait
from pathlib import Path
from typing import Any

from runtime import tracing
from runtime.errors import RouterConfigError
from runtime.http import HttpServer, ListenerLimits, gc_tuning
from runtime.http.listener import bind_socket  # the layer's: TCP_NODELAY on every accepted socket
from runtime.http.processes import ProcessGroup
from runtime.router.app import RouterApp
from runtime.router.background import Background
from runtime.router.config import LimitsConfig, RouterConfig
from runtime.router.discovery import Discovery
from runtime.router.load_board import LoadBoard
from runtime.router.metrics_peers import MetricsPeers
from runtime.router.peer_link import PeerLink, check_socket_dir
from runtime.router.router import Router

__all__ = ["RouterServer", "bind_socket", "run", "serve_processes", "share_limits"]

log = logging.getLogger("grove.router")


_PEER_LINK_TIMEOUT = 60.0  # seconds for the other router processes to start and link up
_KEEPALIVE_S = 5.0  # idle seconds between a client's requests (as vLLM's own server keeps them)


def listener_limits(limits: LimitsConfig, drain_timeout: float) -> ListenerLimits:
    """The router's client limits in the listener's terms."""
    return ListenerLimits(
        max_header_bytes=limits.max_header_bytes,
        max_body_bytes=limits.max_body_bytes,
        header_timeout=limits.header_timeout,
        body_timeout=limits.body_timeout,
        keepalive_timeout=_KEEPALIVE_S,
        write_stall_timeout=limits.client_write_timeout,
        max_connections=limits.max_connections,
        drain_timeout=drain_timeout,
    )


class RouterServer:
    """The router, its discovery and its HTTP server, started and stopped together."""

    def __init__(
        self,
        config: RouterConfig,
        *,
        discovery_kwargs: dict[str, Any] | None = None,
        board: LoadBoard | None = None,
        peers: MetricsPeers | None = None,
    ) -> None:
        self.config = config
        self.router = Router(config, board=board)
        self.router.metrics.peers = peers
        #: With several processes: the links over which the processes learn from each other's routing.
        self.link: PeerLink | None = None
        if peers is not None:
            self.link = PeerLink(
                peers.directory, peers.processes, peers.index, self.router.learn, self.router.metrics
            )
            self.router.peers, self.router.process = self.link, peers.index
        self._publisher = Background("router-metrics-snapshots")
        self.app = RouterApp(self.router)
        self.discovery = Discovery(config.discovery, self.router.set_members, **(discovery_kwargs or {}))
        self._http: HttpServer | None = None
        self._draining: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._closed = False
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
        if self.link is not None:  # before taking traffic: a fact sent before its peer linked is lost
            await self.link.start()
            if not await self.link.connected(_PEER_LINK_TIMEOUT):
                log.warning("%d of the other router processes linked; serving anyway", self.link.peers)
        if sock is None:
            sock = bind_socket(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        self._http = HttpServer(
            self.app, listener_limits(self.config.limits, self.config.drain_timeout), direct=self.app.direct
        )
        await self._http.start(sock)
        peers = self.router.metrics.peers
        if peers is not None:
            self._publisher.start(lambda: peers.run(self.router.metrics.registry))

    def drain(self) -> None:
        """Begin the graceful stop: refuse new connections, finish in-flight requests."""
        self.router.draining = True
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain(), name="router-drain")

    async def _drain(self) -> None:
        try:
            if self._http is not None:
                await self._http.stop()  # in-flight requests get up to drain_timeout
        finally:
            self._drained.set()

    async def wait(self) -> None:
        """Wait until the HTTP server has stopped (after :meth:`drain`), then release everything."""
        await self._drained.wait()
        if not self._closed:
            self._closed = True
            await self._publisher.stop()
            await self.discovery.stop()
            if self.link is not None:
                await self.link.close()
            await self.router.close()

    async def stop(self) -> None:
        """:meth:`drain` and :meth:`wait`."""
        self.drain()
        await self.wait()


def run(config: RouterConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (the CLI entry): uvloop if installed, drain on signal, exit normally.

    With ``config.processes > 1``, that many processes serve one port (:func:`serve_processes`).
    """
    _log_setup(config)
    if config.processes > 1:
        serve_processes(config, on_ready=on_ready)
    else:
        _serve(config, None, on_ready)


def _log_setup(config: RouterConfig) -> None:
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _serve(
    config: RouterConfig,
    sock: socket.socket | None,
    on_ready: Callable[[str], None] | None,
    board: LoadBoard | None = None,
    peers: MetricsPeers | None = None,
) -> None:
    async def main() -> None:
        server = RouterServer(config, board=board, peers=peers)
        await server.start(sock)
        gc_tuning.settle()
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
    tracing.configure("grove-router")
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    finally:
        tracing.flush()


def share_limits(config: RouterConfig) -> RouterConfig:
    """One process's part of the router's limits: connections, concurrency and queue split evenly."""
    n, limits = config.processes, config.limits
    part = {
        "max_connections": max(1, limits.max_connections // n),
        "queue_size": limits.queue_size // n,
    }
    if limits.max_concurrent is not None:
        part["max_concurrent"] = max(1, limits.max_concurrent // n)
    return config.model_copy(update={"limits": limits.model_copy(update=part)})


def _process(
    config: RouterConfig, memory: Any, shared: Path, ready: list[Any], sock: socket.socket, index: int
) -> None:
    """One of several router processes: its share of the limits, the shared load board, metrics and facts, its loop."""
    _log_setup(config)
    n = config.processes
    board, peers = LoadBoard(memory, n, index), MetricsPeers(shared, n, index)
    _serve(share_limits(config), sock, lambda url: ready[index].set(), board, peers)


@contextlib.contextmanager
def shared_hash_seed() -> Iterator[None]:
    """Processes started inside share one random ``PYTHONHASHSEED`` (unless one is set already): their
    ``hash()`` of a prompt's text agrees, and is still unknown to clients."""
    before = os.environ.get("PYTHONHASHSEED")
    if before not in (None, "", "random"):
        yield
        return
    os.environ["PYTHONHASHSEED"] = str(1 + secrets.randbelow(2**32 - 1))
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONHASHSEED"]
        else:
            os.environ["PYTHONHASHSEED"] = before


def serve_processes(config: RouterConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Run ``config.processes`` routers on one port until SIGTERM/SIGINT, then drain them all.

    Each process routes on its own; the workers' in-flight counts are shared through a
    :class:`~runtime.router.load_board.LoadBoard`, what each process's policy learns from the
    requests it routes reaches the others as routed facts (:class:`~runtime.router.peer_link.PeerLink`),
    so every policy decides as one router would, and each ``/metrics`` page counts every process
    (:class:`~runtime.router.metrics_peers.MetricsPeers`). The processes share one hash seed (the
    prompts' block hashes must agree). Should one process die, the others are stopped and this
    exits non-zero, so the pod restarts whole.
    """
    n = config.processes
    context = multiprocessing.get_context("spawn")
    memory = LoadBoard.allocate(n)
    ready = [context.Event() for _ in range(n)]
    # metrics snapshots and the peer links' sockets; mkdtemp makes it 0700: the pod's router alone
    shared = Path(tempfile.mkdtemp(prefix="grove-router-"))
    try:
        check_socket_dir(shared, n)
    except RouterConfigError:
        shutil.rmtree(shared, ignore_errors=True)
        raise
    group = ProcessGroup(
        functools.partial(_process, config, memory, shared, ready),
        n,
        host=config.host,
        port=config.port,
        indexed=True,
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    with shared_hash_seed():
        group.start()
    sentinels = [proc.sentinel for proc in group.processes]
    announced = died = False
    try:
        while not stopping.is_set():
            if mp_wait(sentinels, timeout=0.2):
                died = not stopping.is_set()
                break
            if not announced and all(event.is_set() for event in ready):
                announced = True
                host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
                if on_ready is not None:
                    on_ready(f"http://{host}:{group.port}")
    finally:
        group.stop(timeout=config.drain_timeout + 5)
        shutil.rmtree(shared, ignore_errors=True)
    if died:
        log.error("a router process exited; stopped the others")
        raise SystemExit(1)
