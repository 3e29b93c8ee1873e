"""The upstream pool against scripted HTTP/1.1 workers (raw sockets): reuse, expiry, framing, timeouts, abort."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from runtime.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from runtime.http import UpstreamPool, UpstreamReply

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(30)]

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_BODY = b'{"ok": 1}'
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n" + OK_BODY


class Worker:
    """A loopback HTTP worker that runs ``script`` per connection and records what happened."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.eof = asyncio.Event()
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request (headers and a Content-Length body); b'' at EOF."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


@asynccontextmanager
async def worker(
    script: Callable[[Worker, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[Worker]:
    w = Worker(lambda r, wr: script(w, r, wr))
    w.server = await asyncio.start_server(w._serve, "127.0.0.1", 0)
    w.url = f"http://127.0.0.1:{w.server.sockets[0].getsockname()[1]}"
    try:
        yield w
    finally:
        w.server.close()


async def post_and_read(
    script: Callable[[Worker, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[UpstreamReply, bytes]:
    """POST to a worker running ``script``; the reply and its whole body."""
    pool = UpstreamPool(read=5)
    try:
        async with worker(script) as w:
            reply = await pool.post(w.url, b"{}", {})
            return reply, await reply.read()
    finally:
        await pool.close()


async def answer_ok(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        if b"/slow" in await w.read_request(reader):  # the head now, the body a moment later
            writer.write(OK[: -len(OK_BODY)])
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.write(OK_BODY)
        else:
            writer.write(OK)
        await writer.drain()


async def test_keepalive_reuse_then_idle_expiry() -> None:
    pool = UpstreamPool(read=5, keepalive=0.3)
    async with worker(answer_ok) as w:
        for _ in range(3):
            reply = await pool.post(f"{w.url}/v1/completions", b'{"a":1}', {"x-request-id": "r"})
            assert reply.status == 200 and json.loads(await reply.read()) == {"ok": 1}
        assert w.connections == 1
        first = await pool.post(w.url, b"{}", {})
        await first.read()
        second = await pool.post(f"{w.url}/slow", b"{}", {})  # on the connection ``first`` gave back
        first.close()  # a late close of a finished reply must not touch that connection
        assert json.loads(await second.read()) == {"ok": 1} and w.connections == 1
        assert w.requests[0].startswith(b"POST /v1/completions HTTP/1.1\r\n")
        assert b"x-request-id: r\r\n" in w.requests[0] and w.requests[0].endswith(b'{"a":1}')
        await asyncio.sleep(0.5)  # past the pool's keep-alive: the idle connections are not reused
        assert (await pool.get_json(f"{w.url}/health", timeout=5)) == (200, {"ok": 1})
        assert w.connections == 2
    await pool.close()


async def test_a_pooled_connection_closed_by_the_worker_is_replaced_transparently() -> None:
    async def one_answer_then_close(
        w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await w.read_request(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)  # closes despite keep-alive, as a worker whose timeout expired would

    pool = UpstreamPool(read=5, keepalive=30)
    async with worker(one_answer_then_close) as w:
        assert (await (await pool.post(w.url, b"1", {})).read()) == OK_BODY
        await asyncio.sleep(0.2)
        assert (await (await pool.post(w.url, b"2", {})).read()) == OK_BODY
        assert w.connections == 2
    await pool.close()


async def test_chunked_answer_is_decoded_as_it_arrives() -> None:
    events = [b"data: %d\n\n" % i for i in range(5)]

    async def chunked(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await w.read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for event in events:
            frame = b"%x\r\n%b\r\n" % (len(event), event)
            for i in range(0, len(frame), 3):  # framing split at every awkward place
                writer.write(frame[i : i + 3])
                await writer.drain()
                await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    reply, got = await post_and_read(chunked)
    assert reply.content_type == "text/event-stream"
    assert got == b"".join(events)


async def test_broken_chunked_framing_is_an_error_not_data() -> None:
    async def broken(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await w.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\nxx\r\n")
        await writer.drain()
        await reader.read()

    with pytest.raises(UpstreamError) as info:
        await post_and_read(broken)
    assert info.value.started and info.value.url.startswith("http://127.0.0.1:")


async def test_silent_worker_times_out_before_and_during_the_body() -> None:
    async def silent(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await w.read_request(reader)
        if b"/half" in request:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
            await writer.drain()
        await reader.read()  # then silence until the client gives up

    pool = UpstreamPool(read=0.3)
    async with worker(silent) as w:
        with pytest.raises(UpstreamTimeout, match="timed out") as before:
            await pool.post(f"{w.url}/none", b"{}", {})
        assert before.value.status is None and not before.value.started
        reply = await pool.post(f"{w.url}/half", b"{}", {})
        with pytest.raises(UpstreamTimeout, match="timed out"):
            await reply.read()
        with pytest.raises(
            UpstreamTimeout, match="timed out"
        ):  # the total deadline, under a long read timeout
            await pool.request("POST", f"{w.url}/none", b"{}", total=0.3, read=60)
    await pool.close()


async def test_the_read_timeout_bounds_each_silence_not_the_whole_answer() -> None:
    """A body trickling in faster than the read timeout completes, however long it takes in all;
    then one silence longer than the read timeout on a reused connection still times out."""
    # 4 pieces, 0.6 s apart: 2.4 s in all, each silence well under a read timeout of 2 s (a loaded
    # machine stretched a silence past a 0.65 s margin once: this one is 1.4 s)
    pieces = [b"x" * 10] * 4

    async def trickle(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await w.read_request(reader)
            if not request:
                return
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % sum(map(len, pieces)))
            await writer.drain()
            if b"/stall" in request:
                await reader.read()  # then silence until the client gives up
                return
            for piece in pieces:
                await asyncio.sleep(0.6)
                writer.write(piece)
                await writer.drain()

    pool = UpstreamPool(read=2.0)
    async with worker(trickle) as w:
        for _ in range(2):  # the second answer reuses the connection (and its timer)
            reply = await pool.post(f"{w.url}/trickle", b"{}", {})
            assert await reply.read() == b"".join(pieces)
        assert w.connections == 1
        reply = await pool.post(f"{w.url}/stall", b"{}", {})
        with pytest.raises(UpstreamTimeout, match="timed out"):
            await reply.read()
    await pool.close()


async def test_refused_connection_is_an_upstream_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = UpstreamPool(connect=2)
    with pytest.raises(UpstreamUnreachable) as info:
        await pool.post(f"http://127.0.0.1:{port}/x", b"{}", {})
    assert info.value.status is None and "127.0.0.1" in info.value.url
    await pool.close()


async def test_closing_a_reply_or_cancelling_closes_the_worker_socket() -> None:
    async def stream_forever(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await w.read_request(reader)
        if b"/headers-never" not in request:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
        await reader.read()  # returns at EOF: that is the abort vLLM sees
        w.eof.set()

    pool = UpstreamPool(read=30)
    async with worker(stream_forever) as w:
        reply = await pool.post(w.url, b"{}", {})
        chunks = reply.chunks()
        assert await chunks.__anext__() == b"hello"
        await chunks.aclose()
        await asyncio.wait_for(w.eof.wait(), 5)

        w.eof.clear()
        task = asyncio.create_task(pool.post(f"{w.url}/headers-never", b"{}", {}))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(w.eof.wait(), 5)
    await pool.close()


async def test_a_consumer_that_does_not_read_holds_the_worker_back() -> None:
    mib = b"x" * (1 << 20)
    written = [0]
    blocked = asyncio.Event()

    async def flood(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await w.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(256):
            writer.write(b"%x\r\n%b\r\n" % (len(mib), mib))
            written[0] += 1
            drained = asyncio.ensure_future(writer.drain())
            done, _ = await asyncio.wait({drained}, timeout=0.3)
            if not done:
                blocked.set()  # the pool stopped reading: the worker's writes wait
            await drained

    pool = UpstreamPool(read=30)
    async with worker(flood) as w:
        reply = await pool.post(w.url, b"{}", {})
        await asyncio.wait_for(blocked.wait(), 20)
        assert written[0] < 64  # MiB: bounded by the pool's high-water mark plus socket buffers
        reply.close()
    await pool.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-a": "1\r\nx-injected: 1"},
        {"x-a": "1\nx-injected: 1"},
        {"x-a": "1\rx-injected: 1"},
        {"x-ok": "1", "x-a\r\nx-injected": "1"},
        {"x-a\n": "1", "x-ok": "2"},
    ],
)
async def test_a_header_with_a_line_break_is_never_sent(headers: dict[str, str]) -> None:
    pool = UpstreamPool(read=5)
    async with worker(answer_ok) as w:
        with pytest.raises(UpstreamError, match="line break"):
            await pool.post(w.url, b"{}", headers)
        assert w.requests == []
    await pool.close()


async def test_headers_are_sent_as_given_in_order() -> None:
    pool = UpstreamPool(read=5)
    headers = {"Content-Type": "application/json", "X-Request-Id": "r-1", "x-empty": "", "X-Ünï": "cöde"}
    async with worker(answer_ok) as w:
        reply = await pool.post(w.url + "/v1/x?q=1", b"{}", headers)
        assert await reply.read() == OK_BODY
        head = w.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
        expected = [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
        assert head[0] == b"POST /v1/x?q=1 HTTP/1.1"
        assert head[3:] == expected  # after host and content-length
    await pool.close()


async def test_only_a_get_is_sent_again_when_a_reused_connection_closes_under_it() -> None:
    async def answer_once_then_drop_the_next(
        w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await w.read_request(reader)
        writer.write(OK)
        await writer.drain()
        if await reader.read(1):  # the next request on this connection is closed unanswered, as by
            w.requests.append(b"dropped")  # a worker whose keep-alive ran out as the request came in

    async def fresh_connections_answer(
        w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if w.connections == 1:
            await answer_once_then_drop_the_next(w, reader, writer)
        else:
            await answer_ok(w, reader, writer)

    for method, sent_again in (("GET", True), ("POST", False)):
        pool = UpstreamPool(read=5, keepalive=30)
        async with worker(fresh_connections_answer) as w:
            assert await (await pool.request(method, w.url, b"")).read() == OK_BODY
            if sent_again:
                reply = await pool.request(method, f"{w.url}/again")
                assert await reply.read() == OK_BODY and w.connections == 2
                assert w.requests[-1].startswith(b"GET /again HTTP/1.1\r\n")
            else:  # the worker may have started a POST: sending it again is the caller's decision
                with pytest.raises(UpstreamError, match="closed") as info:
                    await pool.request(method, f"{w.url}/again", b"{}")
                assert info.value.status is None and w.connections == 1
            assert w.requests[1] == b"dropped"
        await pool.close()


async def test_a_connection_lost_before_the_request_went_out_fails_or_retries_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that dies between the connect and the send: a fresh connection, then an error, never a wait."""
    connect = UpstreamPool._connect

    async def connect_after_the_worker_closed(self: UpstreamPool, *args: object) -> object:
        conn = await connect(self, *args)  # type: ignore[arg-type]
        for _ in range(2000):  # the window the connect's task waits in, widened until the close is in
            if conn.closed:
                break
            await asyncio.sleep(0.001)
        assert conn.closed
        return conn

    async def drop(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return None  # closed on accept, as by a worker killed as the connection came in

    async def drop_the_first(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if w.connections > 1:
            await answer_ok(w, reader, writer)

    monkeypatch.setattr(UpstreamPool, "_connect", connect_after_the_worker_closed)
    pool = UpstreamPool(read=30)
    async with worker(drop) as w:
        with pytest.raises(UpstreamError, match="closed before the request was sent") as info:
            await asyncio.wait_for(pool.post(w.url, b"{}", {}), 5)  # not the 30 s read timeout
        assert not isinstance(info.value, UpstreamTimeout) and w.connections == 2 and w.requests == []
    monkeypatch.setattr(UpstreamPool, "_connect", _first_only(connect_after_the_worker_closed, connect))
    async with worker(drop_the_first) as w:
        assert await (await pool.post(w.url, b"{}", {})).read() == OK_BODY  # a POST too: nothing had gone out
        assert w.connections == 2 and len(w.requests) == 1
    await pool.close()


def _first_only(
    first: Callable[..., Awaitable[object]], then: Callable[..., Awaitable[object]]
) -> Callable[..., Awaitable[object]]:
    """``first`` for the first call, ``then`` for the rest."""
    calls = 0

    async def call(*args: object) -> object:
        nonlocal calls
        calls += 1
        return await (first if calls == 1 else then)(*args)

    return call


async def test_an_answer_over_the_pools_bound_is_an_error_and_its_connection_is_dropped() -> None:
    """``read()`` holds an answer whole, so it is bounded as a client's body is (framed or chunked)."""
    body = b"x" * 300_000

    async def big(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await w.read_request(reader):
            small = b"/small" in request
            payload = body[:50_000] if small else body
            if b"/chunked" in request:
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                for i in range(0, len(payload), 10_000):
                    writer.write(b"%x\r\n%s\r\n" % (10_000, payload[i : i + 10_000]))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload))
                for i in range(0, len(payload), 10_000):
                    writer.write(payload[i : i + 10_000])
                    await writer.drain()
            await writer.drain()

    pool = UpstreamPool(read=5, max_answer=100_000)
    async with worker(big) as w:
        for path in ("/framed", "/chunked"):
            reply = await pool.post(f"{w.url}{path}", b"{}", {})
            with pytest.raises(UpstreamError, match="over 100000 bytes") as info:
                await reply.read()
            assert info.value.started and not pool._busy  # dropped, not pooled
            small = await pool.post(f"{w.url}{path}/small", b"{}", {})  # under the bound: whole
            assert await small.read() == body[:50_000]
        assert w.connections == 3  # each answer over the bound cost its connection
    await pool.close()
