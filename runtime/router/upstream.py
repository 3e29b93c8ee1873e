"""The only module that talks to workers over HTTP: one pooled aiohttp session for the router's lifetime.

Connections to each worker are kept alive and reused (no client per request). Idle connections are
dropped before vLLM's own keep-alive expires, so a pooled socket is never reused just as the server
closes it. aiohttp's exceptions are translated into :class:`~runtime.errors.UpstreamError` here and
nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp

from runtime.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable

__all__ = ["Upstream", "UpstreamReply"]


@contextmanager
def _translate(url: str, *, started: bool = False) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamTimeout(f"{url}: timed out", url=url, started=started) from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnreachable(f"{url}: cannot connect: {exc.os_error}", url=url) from exc
    except aiohttp.ClientResponseError as exc:
        raise UpstreamError(f"{url}: {exc.message}", url=url, status=exc.status, started=started) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(f"{url}: {type(exc).__name__}: {exc}", url=url, started=started) from exc


class UpstreamReply:
    """An upstream answer whose status and headers have arrived; the body is read or streamed next."""

    __slots__ = ("_resp", "url")

    def __init__(self, resp: aiohttp.ClientResponse, url: str) -> None:
        self._resp = resp
        self.url = url

    @property
    def status(self) -> int:
        """HTTP status of the answer."""
        return self._resp.status

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, with its parameters."""
        return self._resp.headers.get("Content-Type", "application/json")

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        with _translate(self.url, started=True):
            try:
                return await self._resp.read()
            finally:
                self._resp.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk, as the worker sends it (SSE events pass through unchanged)."""
        with _translate(self.url, started=True):
            try:
                async for chunk in self._resp.content.iter_any():
                    yield chunk
            finally:
                self._resp.release()

    def close(self) -> None:
        """Abandon the answer: the connection is closed, which makes vLLM abort the request."""
        self._resp.close()


class Upstream:
    """Pooled HTTP client for the workers: :meth:`start` it in the event loop, :meth:`close` it at exit."""

    def __init__(self, *, connect: float = 5.0, read: float = 600.0, keepalive: float = 4.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the session and its connection pool (no per-host limit: admission limits the load)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=self._keepalive, ttl_dns_cache=10)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The live session (after :meth:`start`)."""
        if self._session is None:
            raise RuntimeError("Upstream.start() was not called")
        return self._session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, total: float | None = None
    ) -> UpstreamReply:
        """POST ``body``; return once the answer's status and headers are in (the body is not read yet).

        The connect and read timeouts always apply (a silent worker cannot hold a request forever);
        ``total`` bounds the whole exchange on top.
        """
        timeout = (
            aiohttp.ClientTimeout(
                total=total, connect=self._timeout.connect, sock_read=self._timeout.sock_read
            )
            if total is not None
            else self._timeout
        )
        with _translate(url):
            resp = await self.session.post(url, data=body, headers=headers, timeout=timeout)
        return UpstreamReply(resp, url)

    async def get_text(self, url: str, *, timeout: float) -> tuple[int, str]:
        """GET ``url``; its status and body as text (e.g. a worker's Prometheus ``/metrics``)."""
        with _translate(url):
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                return resp.status, (await resp.read()).decode("utf-8", "replace")

    async def get_json(self, url: str, *, timeout: float) -> tuple[int, Any]:
        """GET ``url`` and parse its body as JSON (``None`` when it is not JSON)."""
        with _translate(url):
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                raw = await resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, None
