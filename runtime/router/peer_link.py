"""Routed facts between router processes: each tells the others what it routed, so all learn as one router.

With ``processes > 1`` every process runs the whole policy state (prefix index, sessions, fan-out
siblings, a picker's turn) and learns from its peers' decisions as from its own: after routing, a
process sends the :class:`~runtime.router.policies.routed_fact.RoutedFact` its policy returned to
every peer, whose policy learns from it (``Router.learn``). Nothing is shared in memory, so no
structure has two writers; the in-flight counts stay on the shared load board.

The links are UNIX ``SOCK_SEQPACKET`` connections, one per pair of processes, in the directory the
processes share (``0700``: private to the pod's router): process *i* listens on ``peer-i.sock`` and
connects to every lower-numbered one. Messages keep their boundaries, arrive in order and are
bounded by the socket buffers (a connected pair is not subject to the datagram queue limit). The
hot path never waits: facts are collected during one turn of the event loop and sent once per
peer at its end (``call_soon``), a non-blocking ``send`` that finds the buffer full drops the batch
and counts it (``grove_router_peer_facts_total{outcome="dropped"}``), and a peer's batches are read
by the event loop (``add_reader``) as soon as they arrive.

Why the same decisions: a process sends a request's fact before that request's first upstream byte
can come back, so before its client can send a next request; and a request's handler starts in a
later turn of the event loop than the one whose readiness events brought its bytes, by which time
every fact already in the socket has been read and learnt. So a client's sequential requests are
routed on the same state whichever process takes each. Concurrent requests are not ordered with
one another in one process either; facts that cross may be learnt in another order (a session's
binding keeps the newest).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from runtime.errors import RouterConfigError
from runtime.router.metrics import RouterMetrics
from runtime.router.peer_wire import MAX_MESSAGE, FactWriter, decode_batch, fingerprint
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.workers import PoolRole

__all__ = ["PeerLink", "check_socket_dir"]

log = logging.getLogger("grove.router.peers")

_SNDBUF = 1 << 20  # asked for; the kernel caps it at net.core.wmem_max
_READS_PER_TURN = 256  # batches read from one peer in one callback, so one busy peer cannot starve the loop
_SUN_PATH_MAX = 107  # bytes of a UNIX socket's path (sockaddr_un's sun_path, less its NUL) on Linux
Apply = Callable[[PoolRole, RoutedFact], bool]


def socket_path(directory: Path, index: int) -> Path:
    """Where process ``index`` listens for its peers."""
    return Path(directory) / f"peer-{index}.sock"


def check_socket_dir(directory: Path, processes: int) -> None:
    """Refuse, before any process starts, a directory too deep for the peers' UNIX socket paths.

    Raises:
        RouterConfigError: the longest socket path would not fit; names the limit and the way out.
    """
    longest = len(os.fsencode(socket_path(directory, processes - 1)))
    if longest > _SUN_PATH_MAX:
        raise RouterConfigError(
            f"the router processes' socket directory {str(directory)[:200]!r} is too deep for UNIX socket "
            f"paths ({longest} bytes, at most {_SUN_PATH_MAX}): set TMPDIR to a shorter directory"
        )


class PeerLink:
    """Process ``index``'s links to the other ``processes - 1`` router processes (``directory``: theirs too)."""

    def __init__(
        self, directory: Path, processes: int, index: int, apply: Apply, metrics: RouterMetrics
    ) -> None:
        self.directory, self.processes, self.index = Path(directory), processes, index
        self._apply = apply
        self._metrics = metrics
        self._fingerprint = fingerprint()
        self._writer = FactWriter()
        self._inbox = bytearray(MAX_MESSAGE + 1)  # one read buffer: a longer message is refused whole
        self._listener: socket.socket | None = None
        self._peers: list[socket.socket] = []
        self._flush_scheduled = False
        self._complete = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def peers(self) -> int:
        """Peers connected now."""
        return len(self._peers)

    def _count(self, outcome: str, n: int = 1) -> None:
        if n:
            self._metrics.of(self._metrics.peer_facts, outcome).inc(n)

    async def start(self) -> None:
        """Listen for the higher-numbered peers and connect to the lower-numbered ones (in the background)."""
        self._loop = asyncio.get_running_loop()
        path = socket_path(self.directory, self.index)
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(path))
        listener.listen(self.processes)
        listener.setblocking(False)
        self._listener = listener
        self._loop.add_reader(listener.fileno(), self._accept)
        self._connecting = self._loop.create_task(self._connect_all(), name="router-peer-connect")
        self._check_complete()

    async def connected(self, timeout: float) -> bool:
        """Wait until every peer is connected (at most ``timeout`` seconds); whether they all are."""
        try:
            await asyncio.wait_for(self._complete.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _connect_all(self) -> None:
        for peer in range(self.index):
            path = socket_path(self.directory, peer)
            delay = 0.01
            while True:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                sock.setblocking(False)
                try:
                    sock.connect(str(path))  # a listening peer's backlog takes it at once, or EAGAIN
                except OSError:
                    sock.close()
                    await asyncio.sleep(delay)  # the peer is still starting
                    delay = min(0.5, delay * 2)
                    continue
                self._adopt(sock)
                break

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.exception("accepting a peer router process failed")
                return
            self._adopt(sock)

    def _adopt(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
        except OSError:
            pass
        assert self._loop is not None
        self._peers.append(sock)
        self._loop.add_reader(sock.fileno(), self._readable, sock)
        self._check_complete()

    def _check_complete(self) -> None:
        if len(self._peers) >= self.processes - 1:
            self._complete.set()

    def publish(self, role: PoolRole, fact: RoutedFact) -> None:
        """Send ``fact`` to every peer at the end of this turn of the event loop (never waits)."""
        self._writer.add(role, fact)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send the facts published so far (what the end of this turn of the event loop does)."""
        self._flush_scheduled = False
        facts, truncated = self._writer.facts, self._writer.truncated
        self._writer.truncated = 0
        batches = self._writer.take()
        self._count("truncated", truncated)
        if not self._peers:
            self._count("dropped", facts)  # no peer yet (starting) or none left (stopping)
            return
        sent = facts * len(self._peers)
        for sock in list(self._peers):
            for batch in batches:
                try:
                    sock.send(batch)
                except (BlockingIOError, InterruptedError):  # the peer lags: its buffer is full
                    self._count("dropped", facts)
                    sent -= facts
                    self._warn("dropped", "a peer router process is not keeping up; dropping routed facts")
                    break
                except OSError:
                    self._drop_peer(sock)
                    sent -= facts
                    break
        self._count("sent", sent)

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(_READS_PER_TURN):
            try:
                size = sock.recv_into(self._inbox)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop_peer(sock)
                return
            if not size:  # the peer closed its end (stopping)
                self._drop_peer(sock)
                return
            self._learn(memoryview(self._inbox)[:size])

    def _learn(self, data: memoryview) -> None:
        decoded = decode_batch(data, self._fingerprint)
        learnt = unknown = 0
        for role, fact in decoded.facts:
            if self._apply(role, fact):
                learnt += 1
            else:
                unknown += 1
        self._count("received", learnt)
        self._count("unknown_worker", unknown)
        if decoded.error is not None:
            self._count(decoded.error)
            self._warn(
                decoded.error,
                "routed facts from a peer router process that hashes text differently (PYTHONHASHSEED)"
                if decoded.error == "foreign"
                else "a malformed batch of routed facts from a peer router process",
            )

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def _drop_peer(self, sock: socket.socket) -> None:
        if sock in self._peers:
            self._peers.remove(sock)
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
        sock.close()

    async def close(self) -> None:
        """Close every link and the listening socket (its file too)."""
        if self._connecting is not None:
            self._connecting.cancel()
            try:
                await self._connecting
            except asyncio.CancelledError:
                pass
        if self._flush_scheduled:
            self.flush()
        for sock in list(self._peers):
            self._drop_peer(sock)
        if self._listener is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
            socket_path(self.directory, self.index).unlink(missing_ok=True)
