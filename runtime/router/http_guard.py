"""uvicorn's httptools protocol with the limits it lacks: header size, header read time, connection count.

uvicorn bounds none of them on its httptools path: an 8 MB header is buffered whole, a client that
sends one header byte a minute (slowloris) keeps its connection forever, and connections are not
capped. This subclass counts the bytes of a request's head (the parsed URL and headers, and the raw
bytes of a head still arriving) and answers 431 once they pass ``max_header_bytes``, closes a connection whose head has not arrived ``header_timeout`` seconds
after it opened (or after the previous answer), and answers 503 to connections beyond
``max_connections``. Body read time and clients that stop reading are the application's to bound
(:mod:`runtime.router.app`), since only it knows when it waits on them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runtime.router.config import LimitsConfig

__all__ = ["guarded_protocol"]


def _answer(status: int, reason: str, message: str, kind: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": status}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Guarded(HttpToolsProtocol):
    limits: LimitsConfig  # set by guarded_protocol

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "Service Unavailable", "too many connections", "service_unavailable")
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        head = self._in_head
        super().data_received(data)
        if head and self._in_head:  # the head has not ended: every byte read so far belongs to it
            self._head_bytes += len(data)
        if self._head_bytes > self.limits.max_header_bytes:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"request headers over {self.limits.max_header_bytes} bytes",
                "invalid_request_error",
            )

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        if self._head_bytes > self.limits.max_header_bytes:
            return  # refused in data_received, once the parser returns; the app never sees it
        self._head_bytes = 0
        super().on_headers_complete()

    def _count(self, n: int) -> None:
        if self._in_head:
            self._head_bytes += n

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # keep-alive: the next request's head gets its own deadline
            self._in_head, self._head_bytes = True, 0
            self._arm()

    def on_body(self, body: bytes) -> None:
        if self._head_bytes <= self.limits.max_header_bytes:  # a refused head's body goes nowhere
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._head_bytes <= self.limits.max_header_bytes:
            super().on_message_complete()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, reason: str, message: str, kind: str) -> None:
        self._disarm()
        self._in_head = False
        if not self.transport.is_closing():
            self.transport.write(_answer(status, reason, message, kind))
            self.transport.close()


def guarded_protocol(limits: LimitsConfig) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, bound to these limits."""
    return type("GuardedHttpToolsProtocol", (_Guarded,), {"limits": limits})
