"""The runtime's HTTP/1.1 listener: raw asyncio protocol + httptools, one task per connection, no framework.

Each connection is a :class:`_Connection` protocol. It bounds what a client can cost (see
:class:`~runtime.http.limits.ListenerLimits`): header size (431), body size (413, refused from
``Content-Length`` before it is read), header and body deadlines (408, slowloris), idle keep-alive
expiry, a connection cap (503), and a write-stall deadline on streamed answers (a client that stops
reading is cut, and the stream's iterator is closed so the upstream socket closes with it). A client
that disconnects cancels its handler task, which is how a proxy learns to abort: there is no
watcher task per request. Answers are written in one ``write`` with pre-encoded status lines.

A connection's requests come one after another (HTTP/1.1), so one task answers them all, made when
the first request is complete: a task per request would cost its creation and its registration
each time. The requests of one connection therefore share one :mod:`contextvars` context: a
handler that sets a context variable must set it on every request (or reset it), never rely on a
fresh context.

:meth:`HttpServer.stop` drains: it stops accepting, closes idle connections, lets in-flight
requests finish (their answers carry ``connection: close``) for up to ``drain_timeout``, then cuts
the rest.

A server may also be given a :data:`Direct` handler, offered every request first, from the parser's
last callback: one that takes it answers through the connection itself (a :class:`Responder`),
now or from any later callback, with no coroutine for the request at all; it is told (an
:class:`Answering`) when the client leaves, pauses or stalls. That is the router's hot path: its
answer is relayed from the upstream connection's callbacks. Requests pipelined behind a direct
answer wait for it, in order, as they do behind a handler's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Protocol, cast

import httptools

from runtime.http.errors import INTERNAL_ERROR, HttpError, StreamBroken, error_body
from runtime.http.header_names import NAMES, lower_name
from runtime.http.lazy_timer import LazyTimer
from runtime.http.limits import ListenerLimits
from runtime.http.message import Header, Request, Response, StreamingResponse

__all__ = ["Answering", "Direct", "Handler", "HttpServer", "Refusal", "Responder", "bind_socket"]

log = logging.getLogger("grove.http")

Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]


class Answering(Protocol):
    """What answers a request directly (see :data:`Direct`), told when the client's side ends early."""

    def client_gone(self) -> None:
        """The client disconnected before the answer ended."""

    def client_paused(self) -> None:
        """The client stopped reading for now (its socket buffer is full): stop producing."""

    def client_resumed(self) -> None:
        """The client reads again."""

    def client_stalled(self) -> None:
        """The client stopped reading for longer than the write-stall deadline: the connection is cut."""


class Responder(Protocol):
    """Where a direct answer is written: whole (:meth:`answer`) or as a stream, from any callback."""

    def follow(self, answering: Answering) -> None:
        """Tell ``answering`` when the client's side ends early (until the answer ends)."""

    def answer(self, status: int, body: bytes, content_type: bytes, headers: Sequence[Header]) -> None:
        """Write a whole answer; the request is done."""

    def open_stream(self, status: int, content_type: bytes, headers: Sequence[Header]) -> None:
        """Write a streamed answer's head."""

    def stream(self, chunk: bytes) -> None:
        """Write one chunk of the stream (flushed as it is)."""

    def close_stream(self) -> None:
        """End the stream whole; the request is done."""

    def break_stream(self) -> None:
        """End the stream short (no terminating chunk) and close the connection: no client takes it for whole."""


Direct = Callable[[Request, Responder], bool]
"""A handler that may answer from protocol callbacks, with no coroutine: it returns True when it
took the request (and answers through the responder, now or later), False to leave it to the
:data:`Handler`."""
Refusal = Callable[[int, str, str, dict[str, str]], Response]
"""Builds the answer to a request the listener refuses itself: (status, message, type, headers so far)."""


def _plain_refusal(status: int, message: str, type_: str, headers: dict[str, str]) -> Response:
    return Response(status, error_body(message, type_, status))


_STATUS_LINES: dict[int, bytes] = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_CLOSE = b"connection: close\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_PIPELINE_DEPTH = 8


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Status\r\n".encode()


_FIRST_LINES: dict[tuple[int, bytes], bytes] = {}  # (status, content type) -> both lines, encoded once


def _first_lines(status: int, content_type: bytes) -> bytes:
    lines = _FIRST_LINES.get((status, content_type))
    if lines is None:
        lines = _status_line(status) + b"content-type: " + content_type + b"\r\n"
        if len(_FIRST_LINES) < 256:  # content types come from workers: keep the cache bounded
            _FIRST_LINES[(status, content_type)] = lines
    return lines


def _head(status: int, content_type: bytes, headers: object, keep_alive: bool, length: int | None) -> bytes:
    parts = [_first_lines(status, content_type)]
    if length is None:
        parts.append(_CHUNKED)
    else:
        parts += (b"content-length: ", str(length).encode(), b"\r\n")
    for name, value in headers:  # type: ignore[attr-defined]
        parts += (name, b": ", value, b"\r\n")
    if not keep_alive:
        parts.append(_CLOSE)
    parts.append(b"\r\n")
    return b"".join(parts)


def bind_socket(host: str, port: int, *, reuse_port: bool = False, backlog: int = 2048) -> socket.socket:
    """A listening, non-blocking TCP socket (port 0: the OS picks one; ``reuse_port`` for several processes)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP (else Nagle
    # holds a stream's second write for a delayed ACK, ~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Refuse(Exception):
    """Stop parsing this connection and answer ``status`` (then close)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs the handler, writes answers in order."""

    # slots: more than 30 attributes would leave CPython's shared-key instance dict, and every
    # attribute read of every callback would get slower
    __slots__ = (
        "_asked",
        "_body",
        "_body_bytes",
        "_body_deadline",
        "_busy",
        "_client",
        "_deadline_status",
        "_direct",
        "_direct_done",
        "_head_deadline",
        "_header_bytes",
        "_headers",
        "_heads_done",
        "_in_head",
        "_in_message",
        "_keep",
        "_keepalive_timeout",
        "_limits",
        "_loop",
        "_max_body_bytes",
        "_max_header_bytes",
        "_parser",
        "_paused_reading",
        "_queue",
        "_raw_head",
        "_refusal",
        "_server",
        "_stalling",
        "_task",
        "_timer",
        "_transport",
        "_url",
        "_waiter",
        "_watcher",
        "_writable",
        "closed",
    )

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._limits = server.limits
        # what every request reads, as plain attributes (a pydantic model's go through its attribute hook)
        self._max_header_bytes = server.limits.max_header_bytes
        self._max_body_bytes = server.limits.max_body_bytes
        self._keepalive_timeout = server.limits.keepalive_timeout
        self._head_deadline: tuple[float, int | None] = (server.limits.header_timeout, None)
        self._body_deadline: tuple[float, int | None] = (server.limits.body_timeout, 408)
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client = ""
        self._queue: deque[tuple[Request, bool]] = deque()
        self._task: asyncio.Task[None] | None = None  # answers this connection's requests, in order
        self._busy = False  # a request is being answered
        self._waiter: asyncio.Future[None] | None = None  # the idle task waits on it for the next request
        self._timer = LazyTimer(self._loop, self._on_deadline)
        self._deadline_status: int | None = None
        self._asked: tuple[float, int | None] | None = None  # a deadline the parser asked for, armed after it
        self._writable: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._refusal: _Refuse | None = None
        self.closed = False
        self._in_message = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._in_head = True  # until a head ends: its raw bytes count against max_header_bytes
        self._raw_head = 0
        self._heads_done = 0  # request heads parsed on this connection
        self._direct = False  # a direct handler is answering the current request
        self._direct_done: asyncio.Future[bool] | None = None  # the task waits on it for a direct answer
        self._watcher: Answering | None = None
        self._keep = False  # the current direct answer may keep the connection open
        self._stalling = False  # a direct stream waits for the client to read, under the stall deadline

    # -- connection lifetime ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a socket bound by someone else
        peer = transport.get_extra_info("peername")
        self._client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        if len(self._server.connections) > self._limits.max_connections:
            self._fail(503, "too many connections", "server_busy")
            return
        self._arm(self._limits.header_timeout, None)  # a first request must begin in time

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._server.connections.discard(self)
        self._cancel_timer()
        if self._direct:
            watcher = self._end_direct()
            if watcher is not None:
                watcher.client_gone()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("client went away"))
            self._writable.exception()  # retrieved: nobody may be waiting

    def pause_writing(self) -> None:
        if self._direct:
            self._stalling = True
            self._arm(self._limits.write_stall_timeout, None)
            if self._watcher is not None:
                self._watcher.client_paused()
            return
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._direct:
            if self._stalling:
                self._stalling = False
                self._timer.disarm()
            if self._watcher is not None:
                self._watcher.client_resumed()
            return
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    @property
    def asked(self) -> bool:
        """A request has begun on this connection (a new one, still silent, has not)."""
        return self._heads_done > 0 or self._in_message

    @property
    def idle(self) -> bool:
        """No request is being read or answered (safe to close on drain)."""
        return not self._busy and not self._in_message and not self._queue

    def close(self) -> None:
        """Close the connection (after what has been written is flushed)."""
        if self._transport is not None and not self.closed:
            self._transport.close()

    def abort(self) -> None:
        """Cut the connection now."""
        if self._transport is not None and not self.closed:
            self._transport.abort()

    # -- deadlines -------------------------------------------------------------------------------
    # One lazy timer per connection (a keep-alive request sets three deadlines): see LazyTimer. The
    # parser's callbacks only note the deadline a request still needs (its head, its body), and
    # data_received arms it once fed: a request that came whole in one piece arms none at all.
    def _arm(self, seconds: float, status: int | None) -> None:
        self._deadline_status = status
        self._timer.arm(self._loop.time() + seconds)

    def _cancel_timer(self) -> None:
        self._timer.cancel()

    def _on_deadline(self) -> None:
        if self.closed:
            return
        if self._stalling:  # a direct stream's client stopped reading: cut it
            watcher = self._end_direct()
            if watcher is not None:
                watcher.client_stalled()
            self.abort()
            return
        if self._deadline_status is None or self._busy:
            self.close()  # no (complete) head in time, idle keep-alive expired: closed without an answer
        else:
            self._fail(
                self._deadline_status, "the request body was not received in time", "invalid_request_error"
            )

    # -- parsing (httptools callbacks) -----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        in_head = self._in_head
        heads = self._heads_done
        try:
            self._parser.feed_data(data)
            asked = self._asked
            if asked is not None:
                self._asked = None
                self._arm(*asked)
            # httptools buffers a head still arriving: count its bytes (not when a whole request,
            # head and body, came in this one piece and the next head has not begun)
            if in_head and self._in_head and self._heads_done == heads:
                self._raw_head += len(data)
                if self._raw_head > self._max_header_bytes:
                    self._fail(431, "request line and headers are too large", "invalid_request_error")
        except httptools.HttpParserUpgrade:
            self._asked = None
            self._fail(400, "protocol upgrades are not supported", "invalid_request_error")
        except httptools.HttpParserError:
            self._asked = None
            refusal = self._refusal  # httptools wraps what a callback raised
            if refusal is not None:
                self._fail(refusal.status, refusal.message, "invalid_request_error")
            else:
                self._fail(400, "malformed HTTP request", "invalid_request_error")

    def _refuse(self, status: int, message: str) -> _Refuse:
        self._refusal = _Refuse(status, message)
        return self._refusal

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._body_bytes = 0
        if not self._busy:
            self._asked = self._head_deadline

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self._max_header_bytes:
            raise self._refuse(431, "request line and headers are too large")
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4  # as on_url: counted inline, no call per header
        if self._header_bytes > self._max_header_bytes:
            raise self._refuse(431, "request line and headers are too large")
        key = NAMES.get(name) or lower_name(name)
        text = value.decode("latin-1")
        headers = self._headers
        if key in headers:
            headers[key] = f"{headers[key]}, {text}"
        else:
            headers[key] = text

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
        self._raw_head = 0
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body_bytes:
            raise self._refuse(413, "the request body is too large")
        if not self._busy:
            self._asked = self._body_deadline

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body_bytes:
            raise self._refuse(413, "the request body is too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._in_head = True
        target = self._url
        if target[:1] == b"/" and b"?" not in target and b"#" not in target:
            path, query = target.decode("latin-1"), ""  # the usual origin-form target: no URL object
        else:
            url = httptools.parse_url(target)
            path, query = (url.path or b"/").decode("latin-1"), (url.query or b"").decode("latin-1")
        request = Request(
            method=self._parser.get_method().decode("ascii", "replace"),
            path=path,
            query=query,
            headers=self._headers,
            body=b"".join(self._body),
            client=self._client,
        )
        keep_alive = self._parser.should_keep_alive()
        if not self._busy and not self._queue and self._server.direct is not None:
            self._busy = True  # as the task's path does: no deadline while the answer is made
            self._asked = None
            self._timer.disarm()
            if self._begin_direct(request, keep_alive):
                return
            self._busy = False
        self._queue.append((request, keep_alive))
        if len(self._queue) >= _PIPELINE_DEPTH and self._transport is not None:
            self._transport.pause_reading()
            self._paused_reading = True
        if not self._busy:
            self._busy = True
            self._asked = None
            self._timer.disarm()
            self._wake_task()

    # -- answering -------------------------------------------------------------------------------
    async def _serve(self) -> None:
        """The connection's task: answer queued requests in order; idle, wait for the next one.

        Each answer is written here, not in a coroutine of its own: one fewer to make per request,
        and one frame fewer for a handler's every resumption to pass through.
        """
        queue = self._queue
        while not self.closed:
            if self._paused_reading and self._transport is not None:
                self._transport.resume_reading()
                self._paused_reading = False
            if queue:
                request, keep_alive = queue.popleft()
                if self._server.direct is not None:
                    done = self._direct_done = self._loop.create_future()
                    if self._begin_direct(request, keep_alive):
                        try:
                            keep_alive = await done  # the direct answer ends in some callback
                        except asyncio.CancelledError:
                            return
                        if not keep_alive:
                            self._queue.clear()
                            self.close()
                        del request
                        continue
                    self._direct_done = None
                reply: Response | StreamingResponse | None = None
                try:
                    try:
                        reply = await self._server.handler(request)
                    except HttpError as exc:
                        reply = Response(exc.status, exc.body())
                    except Exception:
                        log.exception("handler failed: %s %s", request.method, request.path)
                        reply = Response(500, INTERNAL_ERROR)
                    keep_alive = keep_alive and not self._server.draining
                    if isinstance(reply, Response):
                        self._write(
                            _head(
                                reply.status, reply.content_type, reply.headers, keep_alive, len(reply.body)
                            )
                            + reply.body
                        )
                    else:
                        await self._stream(reply, keep_alive)
                except (asyncio.CancelledError, ConnectionError, TimeoutError):
                    keep_alive = False
                    self.abort()
                except StreamBroken:  # the stream told the client itself; it must not look complete
                    keep_alive = False
                except Exception:  # a stream that broke after its head was sent: cut it, it ends short
                    log.exception("stream failed: %s %s", request.method, request.path)
                    keep_alive = False
                    self.abort()
                finally:
                    if not keep_alive:
                        self._queue.clear()
                        self.close()
                del request, reply  # no local keeps the request (its body) while idle
                continue
            self._idle()
            self._waiter = self._loop.create_future()
            try:
                await self._waiter  # on_message_complete wakes it; connection_lost cancels the task
            except asyncio.CancelledError:
                return

    async def _stream(self, reply: StreamingResponse, keep_alive: bool) -> None:
        chunks = reply.chunks
        try:
            self._write(_head(reply.status, reply.content_type, reply.headers, keep_alive, None))
            async for chunk in chunks:
                if chunk:
                    self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    if self._writable is not None and not self._writable.done():
                        await asyncio.wait_for(
                            asyncio.shield(self._writable), self._limits.write_stall_timeout
                        )
            self._write(b"0\r\n\r\n")
        except TimeoutError:
            if reply.on_abort is not None:
                reply.on_abort("stopped-reading")
            raise
        except (asyncio.CancelledError, ConnectionError):
            if reply.on_abort is not None:
                reply.on_abort("disconnected")
            raise
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    def _write(self, data: bytes) -> None:
        if self.closed or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("client went away")
        self._transport.write(data)

    # -- direct answers (see Direct and Responder) -------------------------------------------------
    def _begin_direct(self, request: Request, keep_alive: bool) -> bool:
        """Offer ``request`` to the direct handler; whether it took it (it may have answered already)."""
        self._direct, self._keep = True, keep_alive
        try:
            taken = self._server.direct(request, self)  # type: ignore[misc]
        except Exception:
            log.exception("handler failed: %s %s", request.method, request.path)
            if self._direct:
                self.answer(500, INTERNAL_ERROR, b"application/json", ())
            return True
        if not taken:
            self._direct, self._watcher = False, None
        return taken

    def _end_direct(self) -> Answering | None:
        """The direct answer is over (or cut): no more callbacks to its watcher, which is returned."""
        watcher = self._watcher
        self._direct, self._watcher, self._stalling = False, None, False
        return watcher

    def _done_direct(self, keep_alive: bool) -> None:
        """The direct answer was written: serve what came next on this connection, or close it."""
        self._end_direct()
        done, self._direct_done = self._direct_done, None
        if done is not None:  # the connection's task offered it: the task goes on
            if not done.done():
                done.set_result(keep_alive)
            return
        if not keep_alive:
            self._queue.clear()
            self.close()
            return
        self._timer.disarm()
        if self._queue:  # requests pipelined behind this one: the task answers them in order
            self._wake_task()
            return
        self._idle()

    def _idle(self) -> None:
        """No request is being answered: arm the deadline the connection waits under."""
        self._busy = False
        if not self._in_message:
            self._arm(self._keepalive_timeout, None)
        elif self._in_head:  # the next request began while this one was answered: bound it too
            self._arm(self._limits.header_timeout, None)
        else:
            self._arm(self._limits.body_timeout, 408)

    def _wake_task(self) -> None:
        """The connection's task answers the queued requests: made for the first, woken for the next."""
        if self._task is None:
            self._task = self._loop.create_task(self._serve())
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _writable_now(self) -> bool:
        return (
            self._direct
            and not self.closed
            and self._transport is not None
            and not self._transport.is_closing()
        )

    def follow(self, answering: Answering) -> None:
        if self._direct:
            self._watcher = answering

    def answer(self, status: int, body: bytes, content_type: bytes, headers: Sequence[Header]) -> None:
        if not self._writable_now():
            return
        keep = self._keep and not self._server.draining
        assert self._transport is not None
        self._transport.write(_head(status, content_type, headers, keep, len(body)) + body)
        self._done_direct(keep)

    def open_stream(self, status: int, content_type: bytes, headers: Sequence[Header]) -> None:
        if self._writable_now():
            self._keep = self._keep and not self._server.draining
            assert self._transport is not None
            self._transport.write(_head(status, content_type, headers, self._keep, None))

    def stream(self, chunk: bytes) -> None:
        if chunk and self._writable_now():
            assert self._transport is not None
            self._transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))

    def close_stream(self) -> None:
        if self._writable_now():
            assert self._transport is not None
            self._transport.write(b"0\r\n\r\n")
            self._done_direct(self._keep)

    def break_stream(self) -> None:
        if self._writable_now():
            self._done_direct(False)

    def _fail(self, status: int, message: str, type_: str) -> None:
        """Answer an error the client caused before any handler ran, then close."""
        self._cancel_timer()
        if self._transport is not None and not self.closed and not self._transport.is_closing():
            if not self._busy:
                reply = self._server.refusal(status, message, type_, self._headers)
                head = _head(reply.status, reply.content_type, reply.headers, False, len(reply.body))
                self._transport.write(head + reply.body)
            self._transport.close()


class HttpServer:
    """Serve ``handler`` on a socket with :class:`ListenerLimits`; :meth:`stop` drains gracefully.

    ``refusal`` shapes what the listener itself answers (413, 431, 408, 400, 503) when the server
    adds to the error shape (a request id, say). ``direct``, when given, is offered every request
    first (see :data:`Direct`); what it declines goes to ``handler``.
    """

    def __init__(
        self,
        handler: Handler,
        limits: ListenerLimits | None = None,
        *,
        refusal: Refusal | None = None,
        direct: Direct | None = None,
    ) -> None:
        self.handler = handler
        self.direct = direct
        self.limits = limits or ListenerLimits()
        self.refusal = refusal or _plain_refusal
        self.connections: set[_Connection] = set()
        self.draining = False
        self.port = 0
        self.host = "127.0.0.1"
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the listening socket."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    async def start(
        self, sock: socket.socket | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Listen on ``sock`` (else bind ``host:port``)."""
        if sock is None:
            sock = bind_socket(host, port, backlog=self.limits.backlog)
        name = sock.getsockname()
        self.host, self.port = str(name[0]), int(name[1])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), sock=sock, backlog=self.limits.backlog
        )

    async def stop(self, timeout: float | None = None, *, keep_listening: bool = False) -> None:
        """Drain: close idle connections, let in-flight requests finish (bounded), cut the rest.

        New connections are refused at once, unless ``keep_listening``: then they are still served
        (every answer closes its connection) and the handler, seeing :attr:`draining`, answers what
        it should (503, say) while Kubernetes takes the pod out of its Service.
        """
        self.draining = True
        if self._server is not None and not keep_listening:
            self._server.close()
        limit = self.limits.drain_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while self.connections and loop.time() < deadline:
            for conn in list(self.connections):
                if conn.idle and (conn.asked or not keep_listening):  # a new one gets to ask once
                    conn.close()
            await asyncio.sleep(0.01)
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)
        self._server = None
