"""The upstream pool's callback answers (``UpstreamPool.send``) against scripted workers: what the sink
hears, in what order, and that every failure reaches it once, as the pool words failures everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from runtime.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from runtime.http import UpstreamPool
from runtime.http.upstream import Sent
from tests.runtime.http.test_upstream import OK, OK_BODY, Worker, answer_ok, worker

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(30)]


class Recorder:
    """An answer sink that writes down what it hears; ``ended`` resolves at the end or the failure."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def answer_head(self, status: int, headers: Mapping[str, str]) -> None:
        self.events.append(("head", (status, headers.get("content-type"))))

    def answer_body(self, data: bytes) -> None:
        self.events.append(("body", data))

    def answer_end(self) -> None:
        self.events.append(("end", None))
        self.ended.set_result(None)

    def answer_failed(self, error: UpstreamError) -> None:
        self.events.append(("failed", error))
        self.ended.set_result(None)

    def body(self) -> bytes:
        return b"".join(data for kind, data in self.events if kind == "body")  # type: ignore[misc]

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


async def test_an_answer_is_told_head_body_end_and_its_connection_reused() -> None:
    pool = UpstreamPool(read=5)
    async with worker(answer_ok) as w:
        for i in range(3):
            sink = Recorder()
            sent = pool.send("POST", f"{w.url}/v1/completions", b'{"a":%d}' % i, {"x-request-id": "r"}, sink)
            await asyncio.wait_for(sink.ended, 5)
            assert sink.events[0] == ("head", (200, "application/json"))
            assert sink.kinds()[-1] == "end" and sink.body() == OK_BODY and sent.done
        assert w.connections == 1  # the first send connected (a task); the others found it pooled
        assert w.requests[2].startswith(b"POST /v1/completions HTTP/1.1\r\n")
        assert b"x-request-id: r\r\n" in w.requests[2] and w.requests[2].endswith(b'{"a":2}')
    await pool.close()


async def test_a_stream_is_told_chunk_by_chunk_as_it_arrives() -> None:
    events = [b"data: %d\n\n" % i for i in range(3)]
    sink_ref: list[Recorder] = []

    async def chunked(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await w.read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for event in events:
            writer.write(b"%x\r\n%b\r\n" % (len(event), event))
            await writer.drain()
            for _ in range(100):  # the sink has it before the next chunk is written
                if sink_ref[0].body().endswith(event):
                    break
                await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    pool = UpstreamPool(read=5)
    async with worker(chunked) as w:
        sink = Recorder()
        sink_ref.append(sink)
        pool.send("POST", w.url, b"{}", {}, sink)
        await asyncio.wait_for(sink.ended, 5)
    assert [data for kind, data in sink.events if kind == "body"] == events
    assert sink.kinds()[0] == "head" and sink.kinds()[-1] == "end"
    await pool.close()


async def test_failures_reach_the_sink_once_worded_as_the_pool_words_them() -> None:
    async def silent(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await w.read_request(reader)
        await asyncio.sleep(5)

    async def cut_mid_body(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await w.read_request(reader)
        writer.write(OK[:-4])
        await writer.drain()

    pool = UpstreamPool(read=0.3, connect=2)
    refused = Recorder()
    pool.send("POST", "http://127.0.0.1:9/", b"{}", {}, refused)  # nothing listens on port 9
    await asyncio.wait_for(refused.ended, 5)
    assert refused.kinds() == ["failed"] and isinstance(refused.events[0][1], UpstreamUnreachable)
    async with worker(silent) as w:
        quiet = Recorder()
        pool.send("POST", w.url, b"{}", {}, quiet)
        await asyncio.wait_for(quiet.ended, 5)
        error = quiet.events[-1][1]
        assert quiet.kinds() == ["failed"] and isinstance(error, UpstreamTimeout) and not error.started
    async with worker(cut_mid_body) as w:
        cut = Recorder()
        pool.send("POST", w.url, b"{}", {}, cut)
        await asyncio.wait_for(cut.ended, 5)
        error = cut.events[-1][1]
        assert cut.kinds()[0] == "head" and cut.kinds()[-1] == "failed"
        assert isinstance(error, UpstreamError) and error.started and cut.kinds().count("failed") == 1
    with pytest.raises(UpstreamError, match="line break"):  # refused before anything is sent
        pool.send("POST", "http://127.0.0.1:9/", b"{}", {"x": "a\r\nb: c"}, Recorder())
    await pool.close()


async def test_abort_closes_the_socket_and_the_sink_hears_nothing_more() -> None:
    closed = asyncio.Event()

    async def slow(w: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await w.read_request(reader)
        writer.write(OK[: -len(OK_BODY)])  # the head; the body never comes
        await writer.drain()
        await reader.read()  # EOF: the pool closed the connection, which is how vLLM learns to abort
        closed.set()

    pool = UpstreamPool(read=5)
    async with worker(slow) as w:
        sink = Recorder()
        sent: Sent = pool.send("POST", w.url, b"{}", {}, sink)
        for _ in range(200):
            if sink.events:
                break
            await asyncio.sleep(0.01)
        assert sink.kinds() == ["head"]
        sent.abort()
        await asyncio.wait_for(closed.wait(), 5)
        await asyncio.sleep(0.05)
        assert sink.kinds() == ["head"] and not sink.ended.done()
    await pool.close()
