"""The upstream pool against a worker that fails at random points: no request hangs, none is lost.

A loopback worker (raw sockets) answers each request by a behaviour drawn from a seeded generator:
a proper answer (kept alive, or closed after), a close or a reset at accept, after reading the
request, in the middle of the body or of a chunked stream, or an idle keep-alive connection closed
a moment after its answer (the race a pool's reuse meets). Sequential and concurrent requests, read
whole or streamed. The reference is the worker's own record of what it did with each request (every
request carries its number): a proper answer must arrive whole and equal to what was sent; a cut one
must be an error, never a shorter body taken for success; and every request ends in an answer or an
``UpstreamError`` well within its read timeout (a wait that outlasts it is a lost wake-up, the defect
this test was written after). At the end no connection is left checked out.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import pytest

from runtime.errors import UpstreamError, UpstreamTimeout
from runtime.http import UpstreamPool

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

READ_TIMEOUT = 30.0
"""The pool's read timeout: far above ``BOUND``, so a request that reaches it waited for nothing."""
BOUND = 5.0
"""Every request must end within this (the worker never waits longer than a few milliseconds)."""
BEHAVIOURS = (
    "ok", "ok", "ok", "ok_then_close", "ok_then_idle_close", "chunked_ok",
    "close_at_accept", "reset_at_accept", "close_after_request", "reset_after_request",
    "cut_body", "cut_chunked",
)  # fmt: skip
PROPER = {"ok", "ok_then_close", "ok_then_idle_close", "chunked_ok"}


def _answer(number: int, *, chunked: bool, close: bool) -> bytes:
    body = b'{"n": %d}' % number
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    if close:
        head += b"connection: close\r\n"
    if not chunked:
        return head + b"content-length: %d\r\n\r\n" % len(body) + body
    half = len(body) // 2
    return (
        head
        + b"transfer-encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
        + b"0\r\n\r\n"
    )


class ChaosWorker:
    """Serves each request by the next drawn behaviour; ``done[n]`` is what request ``n`` got."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.done: dict[int, str] = {}
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _pause(self) -> None:
        await asyncio.sleep(self.rng.choice((0, 0, 0.0005, 0.002)))

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; whether the connection stays open for the next."""
        behaviour = self.rng.choice(BEHAVIOURS)
        if behaviour in ("close_at_accept", "reset_at_accept"):
            await self._pause()
            if behaviour == "reset_at_accept":
                self._reset(writer)
            return False
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        number = int((await reader.readexactly(length)).decode())
        self.done[number] = behaviour
        await self._pause()
        if behaviour == "close_after_request":
            return False
        if behaviour == "reset_after_request":
            self._reset(writer)
            return False
        if behaviour == "cut_body":
            whole = _answer(number, chunked=False, close=False)
            writer.write(whole[: whole.index(b"\r\n\r\n") + 6])  # the head and two bytes of the body
            await writer.drain()
            return False
        if behaviour == "cut_chunked":
            whole = _answer(number, chunked=True, close=False)
            writer.write(whole[: len(whole) - 12])  # the last chunk and the terminator never come
            await writer.drain()
            return False
        close = behaviour == "ok_then_close"
        writer.write(_answer(number, chunked=behaviour == "chunked_ok", close=close))
        await writer.drain()
        if behaviour == "ok_then_idle_close":
            await self._pause()
            return False
        return not close


async def _request(pool: UpstreamPool, url: str, number: int, streamed: bool) -> bytes | BaseException:
    """Request ``number``'s answer body, or the error that ended it."""
    try:
        reply = await pool.post(f"{url}/v1/completions", str(number).encode(), {})
        if not streamed:
            return await reply.read()
        return b"".join([piece async for piece in reply.chunks()])
    except UpstreamError as exc:
        return exc


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_worker_failing_at_random_points_never_hangs_a_request_nor_cuts_an_answer(seed: int) -> None:
    worker = ChaosWorker(seed)
    await worker.start()
    pool = UpstreamPool(connect=2, read=READ_TIMEOUT, keepalive=30)
    rng = random.Random(seed * 1000)
    outcomes: dict[int, bytes | BaseException] = {}
    try:
        number = 0
        for batch in range(150):
            size = 1 if batch % 3 else 4  # sequential on reused connections, and some at once
            numbers = list(range(number, number + size))
            number += size
            results = await asyncio.wait_for(
                asyncio.gather(*(_request(pool, worker.url, n, rng.random() < 0.5) for n in numbers)), BOUND
            )  # a TimeoutError here is a request that waited for nothing
            outcomes.update(zip(numbers, results, strict=True))
    finally:
        await pool.close()
        await worker.stop()
    for n, outcome in outcomes.items():
        behaviour = worker.done.get(n)  # None: the worker closed before reading it, on every attempt
        if behaviour in PROPER:
            assert outcome == b'{"n": %d}' % n, (n, behaviour, outcome)
        elif isinstance(outcome, bytes):  # cut or closed: an error, never a shorter body taken for an answer
            pytest.fail(f"request {n} ({behaviour}) got {outcome!r}")
        assert not isinstance(outcome, UpstreamTimeout), (n, behaviour, outcome)
    answered = sum(isinstance(o, bytes) for o in outcomes.values())
    assert 0 < answered < len(outcomes)  # both kinds happened
    assert not pool._busy  # no connection left checked out
