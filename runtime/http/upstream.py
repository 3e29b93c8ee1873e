"""Keep-alive HTTP/1.1 client for the workers: raw asyncio protocol + httptools, one pool per worker.

Each worker (host, port) has its own pool of idle connections, reused last-in first-out and dropped
once idle for ``keepalive`` seconds (before vLLM's own keep-alive closes them under us). Every
exchange is bounded: ``connect`` (to open a socket), ``read`` (the longest silence between bytes,
including the wait for the status line) and an optional ``total``. Responses are decoded from
chunked transfer encoding by httptools; a body that breaks the framing is an error, never data.
Closing a reply before its end closes the socket, which is how vLLM learns to abort the request.
Every failure is an :class:`~runtime.errors.UpstreamError` (``UpstreamUnreachable`` when no
connection could be made, ``UpstreamTimeout`` when a deadline passed), translated here and nowhere else.
A request sent under a span (``runtime.tracing``) carries it as W3C ``traceparent``, so the callee
(a stage server, a router, vLLM) continues the same trace.

Two ways to take an answer: :meth:`UpstreamPool.request` awaits its head and returns an
:class:`UpstreamReply` to read or stream; :meth:`UpstreamPool.send` has the connection call an
:class:`AnswerSink` as the answer arrives (head, body pieces, end, or failure), with no coroutine
per request: the router's hot path, which relays the answer from those callbacks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncGenerator, Coroutine, Mapping
from functools import lru_cache
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import httptools

from runtime.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from runtime.http.header_names import NAMES, lower_name
from runtime.http.lazy_timer import LazyTimer
from runtime.tracing.context import SpanContext, current, format_traceparent

__all__ = ["MAX_ANSWER", "AnswerSink", "Sent", "UpstreamPool", "UpstreamReply", "header_lines"]

_HIGH_WATER = 256 * 1024
MAX_ANSWER = 64 * 1024 * 1024
"""The largest answer :meth:`UpstreamReply.read` holds whole (streamed answers are relayed, not held)."""
_MAX_IDLE_PER_WORKER = 256


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[str, int, bytes]:
    """(host, port, request line from its target on, with the Host header) of an ``http://`` URL:
    ``b" /path?query HTTP/1.1\\r\\nhost: netloc\\r\\n"``, encoded once (the method goes before it)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UpstreamError(f"{url}: only http:// URLs are supported", url=url)
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, f" {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n".encode()


def _encode(
    method: str, url: str, body: bytes, headers: Mapping[str, str] | bytes | None, trace: SpanContext | None
) -> tuple[str, int, bytes]:
    """(host, port, the whole request encoded); ``trace``, when given, is sent as its ``traceparent``."""
    host, port, line = _target(url)
    parts = [method.encode(), line]
    if body or method != "GET":
        parts.append(b"content-length: %d\r\n" % len(body))
    if headers:
        parts.append(headers if isinstance(headers, bytes) else header_lines(headers, url))
    if trace is not None:  # the callee (stage server, router, vLLM) continues this trace
        parts += (b"traceparent: ", format_traceparent(trace).encode(), b"\r\n")
    parts += (b"\r\n", body)
    return host, port, b"".join(parts)


def header_lines(headers: Mapping[str, str], url: str) -> bytes:
    """``name: value\\r\\n`` for each header, encoded; one holding a line break is refused (no request smuggling).

    What :meth:`UpstreamPool.request` sends of a mapping; a caller that sends the same headers on
    many requests encodes them once here and passes the bytes instead.

    Joined in C (no Python loop over the headers): each ``name: value`` holds no line break exactly
    when the ``\\n``-joined lines hold one fewer ``\\n`` than there are headers and no ``\\r``.
    """
    lines = "\n".join(map(": ".join, headers.items()))
    if lines.count("\n") != len(headers) - 1 or "\r" in lines:
        raise UpstreamError(f"{url}: a header holds a line break", url=url)
    return (lines.replace("\n", "\r\n") + "\r\n").encode("latin-1")


class AnswerSink(Protocol):
    """Takes an answer as the connection receives it (:meth:`UpstreamPool.send`); exactly one of
    ``answer_end`` and ``answer_failed`` ends it, and nothing is called after that."""

    def answer_head(self, status: int, headers: Mapping[str, str]) -> None:
        """The status line and headers are in (lower-case names)."""

    def answer_body(self, data: bytes) -> None:
        """A piece of the body (decoded from chunked framing)."""

    def answer_end(self) -> None:
        """The answer ended whole; the connection is back in the pool."""

    def answer_failed(self, error: UpstreamError) -> None:
        """The exchange failed (``started``: after the head); the socket is closed."""


class _Exchange(asyncio.Protocol):
    """One upstream connection and the answer it is currently receiving."""

    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self._loop = asyncio.get_running_loop()  # made by the loop's connect, and bound to that loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._timer: LazyTimer | None = None  # made by the first wait, on the running loop
        self.sink: AnswerSink | None = None  # set by :meth:`UpstreamPool.send` for one answer
        self._sent: Sent | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.done = False
        self.received = 0
        self.error: str | None = None
        self.buffer: deque[bytes] = deque()
        self.buffered = 0
        self.keep_alive = False
        self._paused = False

    # -- transport callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        unframed = "content-length" not in self.headers and "transfer-encoding" not in self.headers
        if self.headers_done and unframed and self.error is None:
            self.done = True  # an answer without framing ends when the worker closes
            if self.sink is not None:
                self._ended()
                return
        if not self.done and self.error is None:
            self.error = "connection closed before the answer ended"
        if self.sink is not None and not self.done:
            self._sink_failed(self.error or "connection closed before the answer ended", timed_out=False)
        self._wake()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        sinking = self.sink is not None  # (it ends when the answer does, in the parser's callbacks)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.error = "malformed HTTP answer"
            self.abort()
            if self.sink is not None:
                self._sink_failed(self.error, timed_out=False)
        if sinking:
            if self._sent is not None:  # bytes came and the answer goes on: the silence bound starts again
                self._sent.rearm()
            return
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool | None:
        return None

    # -- parser callbacks ------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[NAMES.get(name) or lower_name(name)] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self.headers_done = True
        if self.sink is not None:
            self.sink.answer_head(self.status, self.headers)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.answer_body(body)
            return
        self.buffer.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        self.done = True
        if self.sink is not None:
            self._ended()

    # -- a sink's answer -------------------------------------------------------------------------
    def _ended(self) -> None:
        """The answer ended whole: the connection goes back to the pool before the sink hears it."""
        sink, sent = self.sink, self._sent
        self.sink = self._sent = None
        assert sink is not None and sent is not None
        sent.finish(reusable=self.keep_alive and not self.closed and self.error is None)
        sink.answer_end()

    def _sink_failed(self, message: str, *, timed_out: bool) -> None:
        sink, sent = self.sink, self._sent
        self.sink = self._sent = None
        if sink is None or sent is None:
            return
        sent.finish(reusable=False)
        sink.answer_failed(sent.error(message, timed_out=timed_out, started=self.headers_done))

    # -- waiting ---------------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def arm_read(self, seconds: float) -> None:
        """The answer's next bytes are due within ``seconds``; past that, :meth:`_expired`."""
        if self._timer is None:
            self._timer = LazyTimer(self._loop, self._expired)
        self._timer.arm(self._loop.time() + seconds)

    def disarm_read(self) -> None:
        """No bytes are awaited now."""
        if self._timer is not None:
            self._timer.disarm()

    async def wait(self, timeout: float) -> None:
        """Wait for more data (or the end, or an error) for at most ``timeout`` s."""
        waiter = self._waiter = self._loop.create_future()
        self.arm_read(timeout)
        try:
            await waiter
        finally:
            self.disarm_read()
            self._waiter = None

    def _expired(self) -> None:
        """The read deadline passed while waiting: the wait raises ``TimeoutError`` (a sink is told)."""
        if self.sink is not None:
            self.abort()
            self._sink_failed("timed out", timed_out=True)
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TimeoutError())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def take(self) -> bytes:
        """Everything buffered so far; resumes reading if it had been paused."""
        data = b"".join(self.buffer) if len(self.buffer) != 1 else self.buffer[0]
        self.buffer.clear()
        self.buffered = 0
        if self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()
            self._paused = False
        return data

    def send(self, data: bytes) -> bool:
        """Start a new exchange on this connection with the encoded request ``data``; whether it went.

        A worker that dies between the connect and the send (its socket closed while the connect's
        task waited to resume) gets nothing: the error stays set, or the wait would last until the
        read timeout.
        """
        self._reset()  # the parser carries on: a keep-alive connection's answers follow one another
        if self.closed or self.transport is None:
            self.error = "connection closed before the request was sent"
            return False
        self.transport.write(data)
        return True

    def abort(self) -> None:
        """Close the socket now (the worker sees the disconnect and aborts the request)."""
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True
        self._cancel_timer()


class Sent:
    """One request :meth:`UpstreamPool.send` sent: its answer goes to the sink; :meth:`abort` abandons it."""

    __slots__ = ("_conn", "_pool", "_read", "_task", "_url", "done")

    def __init__(self, pool: UpstreamPool, url: str, read: float) -> None:
        self._pool, self._url, self._read = pool, url, read
        self._conn: _Exchange | None = None
        self._task: asyncio.Task[None] | None = None  # connecting, when no pooled connection was idle
        self.done = False

    def _start(self, conn: _Exchange, sink: AnswerSink, data: bytes) -> None:
        self._conn = conn
        conn.sink, conn._sent = sink, self
        if not conn.send(data):
            conn._sink_failed(conn.error or "connection closed before the request was sent", timed_out=False)
            return
        self.rearm()

    def rearm(self) -> None:
        """The longest silence allowed starts now."""
        if self._conn is not None:
            self._conn.arm_read(self._read)

    def finish(self, *, reusable: bool) -> None:
        """The exchange is over: its connection goes back to the pool, or is closed."""
        self.done = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.disarm_read()
        if reusable:
            self._pool.release(conn)
        else:
            self._pool.discard(conn)

    def error(self, message: str, *, timed_out: bool, started: bool) -> UpstreamError:
        """The exchange's failure, as the rest of the pool words it."""
        cls = UpstreamTimeout if timed_out else UpstreamError
        return cls(f"{self._url}: {message}", url=self._url, started=started)

    def abort(self) -> None:
        """Abandon the answer: the socket closes (the worker aborts the request); the sink hears nothing more."""
        if self.done:
            return
        self.done = True
        if self._task is not None:
            self._task.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.sink = conn._sent = None
            self._pool.discard(conn)

    def pause(self) -> None:
        """Stop reading the answer (the client is not keeping up); the silence bound is suspended too."""
        conn = self._conn
        if conn is not None and conn.transport is not None and not conn.closed:
            conn.transport.pause_reading()
            conn.disarm_read()

    def resume(self) -> None:
        """Read the answer again."""
        conn = self._conn
        if conn is not None and conn.transport is not None and not conn.closed:
            conn.transport.resume_reading()
            self.rearm()


class UpstreamReply:
    """An answer whose status and headers are in; read it whole, stream it, or close it to abort."""

    __slots__ = ("_conn", "_deadline", "_finished", "_pool", "_read", "status", "url")

    def __init__(
        self, conn: _Exchange, pool: UpstreamPool, url: str, read: float, deadline: float | None
    ) -> None:
        self._conn = conn
        self._pool = pool
        self._read = read
        self._deadline = deadline
        self._finished = False
        self.url = url
        self.status = conn.status
        """HTTP status of the answer."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The answer's headers (lower-case names)."""
        return self._conn.headers

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, with its parameters."""
        return self._conn.headers.get("content-type", "application/json")

    async def _more(self) -> None:
        conn = self._conn
        if conn.error is not None:
            raise UpstreamError(f"{self.url}: {conn.error}", url=self.url, started=True)
        try:
            await conn.wait(self._pool.budget(self._read, self._deadline))
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.url}: timed out", url=self.url, started=True) from exc

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives (decoded from chunked framing); closing early aborts the request."""
        conn = self._conn
        try:
            while True:
                if conn.buffer:
                    yield conn.take()
                    continue
                if conn.done:
                    return
                await self._more()
        finally:
            self._finish()

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        conn = self._conn
        limit = self._pool.max_answer
        if conn.done and conn.error is None and conn.buffered <= limit:  # the usual: whole, with its head
            data = conn.take()
            self._finish()
            return data
        parts: list[bytes] = []
        size = 0
        async for piece in self.chunks():
            size += len(piece)
            if size > limit:  # a worker's answer is bounded as a client's body is
                self._finish()  # the connection is dropped: the rest of the answer is never read
                raise UpstreamError(
                    f"{self.url}: the answer is over {limit} bytes", url=self.url, started=True
                )
            parts.append(piece)
        return b"".join(parts)

    def close(self) -> None:
        """Abandon the answer: unless it had ended, the socket is closed (vLLM aborts the request)."""
        self._finish()

    def _finish(self) -> None:
        if self._finished:  # once only: the connection may already serve another request
            return
        self._finished = True
        conn = self._conn
        if conn.done and conn.keep_alive and not conn.closed and conn.error is None and not conn.buffer:
            self._pool.release(conn)
        else:
            self._pool.discard(conn)


class UpstreamPool:
    """Keep-alive connections to every worker; :meth:`close` it at exit."""

    def __init__(
        self,
        *,
        connect: float = 5.0,
        read: float = 600.0,
        keepalive: float = 4.0,
        max_answer: int = MAX_ANSWER,
    ) -> None:
        self.connect = connect
        self.read = read
        self.keepalive = keepalive
        self.max_answer = max_answer
        self._idle: dict[tuple[str, int], list[_Exchange]] = {}
        self._busy: set[_Exchange] = set()

    @staticmethod
    def budget(read: float, deadline: float | None) -> float:
        """Seconds the next wait may take: the read timeout, cut by the total deadline."""
        if deadline is None:
            return read
        return max(0.0, min(read, deadline - time.monotonic()))

    def _idle_conn(self, host: str, port: int) -> _Exchange | None:
        """A pooled connection to ``host:port`` still fresh, checked out; else None (a new one is needed)."""
        idle = self._idle.get((host, port))
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive:
                conn.reused = True
                self._busy.add(conn)
                return conn
            conn.abort()
        return None

    async def _connect(self, host: str, port: int, url: str, deadline: float | None) -> _Exchange:
        """A new connection to ``host:port``, checked out."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Exchange((host, port)), host, port),
                self.budget(self.connect, deadline),
            )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{url}: connect timed out", url=url) from exc
        except OSError as exc:
            raise UpstreamUnreachable(f"{url}: cannot connect: {exc}", url=url) from exc
        self._busy.add(conn)
        return conn

    def release(self, conn: _Exchange) -> None:
        """Return a connection whose answer ended cleanly to its worker's pool."""
        self._busy.discard(conn)
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= _MAX_IDLE_PER_WORKER:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def discard(self, conn: _Exchange) -> None:
        """Close a connection that cannot be reused (or whose answer is being abandoned)."""
        self._busy.discard(conn)
        conn.abort()

    async def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: Mapping[str, str] | bytes | None = None,
        *,
        total: float | None = None,
        read: float | None = None,
    ) -> UpstreamReply:
        """Send a request; return once the status line and headers are in (the body is not read yet).

        ``headers``: a mapping, or the lines :func:`header_lines` made of one (checked there).
        """
        host, port, data = _encode(method, url, body, headers, current())
        read = self.read if read is None else read
        deadline = None if total is None else time.monotonic() + total
        for attempt in (0, 1):
            # a pooled connection without a coroutine (the usual case); a new one awaits its connect
            conn = self._idle_conn(host, port) or await self._connect(host, port, url, deadline)
            sent = False
            try:
                sent = conn.send(data)
                while not conn.headers_done:
                    if conn.error is not None:
                        raise UpstreamError(f"{url}: {conn.error}", url=url)
                    await conn.wait(read if deadline is None else self.budget(read, deadline))
            except TimeoutError as exc:
                self.discard(conn)
                raise UpstreamTimeout(f"{url}: timed out", url=url) from exc
            except UpstreamError:
                self.discard(conn)
                if attempt == 0 and not sent:
                    continue  # nothing went out: any request is safe to send on a new connection
                if attempt == 0 and method == "GET" and conn.reused and conn.received == 0:
                    continue  # a pooled connection closed as it was reused: GET is safe to send again
                # (a POST is not: the worker may have started it; retrying is the caller's policy)
                raise
            except BaseException:
                self.discard(conn)  # cancelled: closing the socket makes the worker abort
                raise
            return UpstreamReply(conn, self, url, read, deadline)
        raise AssertionError("unreachable")

    def send(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str] | bytes | None,
        sink: AnswerSink,
        *,
        trace: SpanContext | None = None,
        read: float | None = None,
    ) -> Sent:
        """Send a request whose answer ``sink`` takes as it arrives (see :class:`AnswerSink`).

        On a pooled connection it is written before this returns; otherwise a task connects first.
        ``trace``: the span the callee continues (its ``traceparent``). A request that cannot be
        encoded raises :class:`UpstreamError` here; every later failure goes to the sink.
        """
        host, port, data = _encode(method, url, body, headers, trace)
        sent = Sent(self, url, self.read if read is None else read)
        conn = self._idle_conn(host, port)
        if conn is not None:
            sent._start(conn, sink, data)
        else:
            sent._task = asyncio.get_running_loop().create_task(
                self._connect_then(sent, host, port, sink, data)
            )
        return sent

    async def _connect_then(self, sent: Sent, host: str, port: int, sink: AnswerSink, data: bytes) -> None:
        try:
            conn = await self._connect(host, port, sent._url, None)
        except UpstreamError as exc:
            sent.done = True
            sink.answer_failed(exc)
            return
        sent._task = None
        if sent.done:  # abandoned while connecting
            self.discard(conn)
            return
        sent._start(conn, sink, data)

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        total: float | None = None,
    ) -> Coroutine[Any, Any, UpstreamReply]:
        """POST ``body``; its awaitable answer, once status and headers are in (see :meth:`request`).

        :meth:`request`'s own coroutine, not one wrapping it: a coroutine less per leg.
        """
        return self.request("POST", url, body, headers, total=total)

    async def get_text(self, url: str, *, timeout: float) -> tuple[int, str]:
        """GET ``url``; its status and body as text (e.g. a worker's Prometheus ``/metrics``)."""
        reply = await self.request("GET", url, total=timeout)
        return reply.status, (await reply.read()).decode("utf-8", "replace")

    async def get_json(self, url: str, *, timeout: float) -> tuple[int, Any]:
        """GET ``url`` and parse its body as JSON (``None`` when it is not JSON)."""
        reply = await self.request("GET", url, total=timeout)
        raw = await reply.read()
        try:
            return reply.status, json.loads(raw) if raw else None
        except ValueError:
            return reply.status, None

    async def close(self) -> None:
        """Close every pooled and in-use connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
        for conn in list(self._busy):
            conn.abort()
        self._busy.clear()
