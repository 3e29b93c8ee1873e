"""The server's only HTTP client: stage servers and routers, over one shared keep-alive session.

Every aiohttp exception is translated here, into ``StageUpstreamError`` naming the stage and URL, so
nothing else in the server knows which client library is underneath. (Those messages go to the log;
a client sees only the stage and the error type.) A stream counts as complete only when it ends with
``data: [DONE]``: one that stops early failed, whatever its last chunk said.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from runtime.server.errors import PipelineRunError, StageUpstreamError, from_body

__all__ = ["Upstream"]

_TRANSPORT_ERRORS = (aiohttp.ClientError, ConnectionError, OSError)
_ERROR_BODY_LIMIT = 64 * 1024


def _error_message(payload: object) -> str:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if payload.get("message"):
            return str(payload["message"])
    return str(payload)[:256]


class Upstream:
    """A lazily opened ``aiohttp.ClientSession`` (it must be made inside the running loop)."""

    def __init__(self, *, limit: int = 256) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session; connections are kept alive between calls."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post_json(
        self, url: str, body: dict[str, Any], headers: dict[str, str], *, what: str, stage: str
    ) -> tuple[int, Any]:
        """POST JSON and parse the JSON answer; unreachable or non-JSON becomes a ``StageUpstreamError``."""
        try:
            async with self.session.post(url, json=body, headers=headers) as resp:
                return resp.status, await resp.json(content_type=None)
        except _TRANSPORT_ERRORS as exc:
            raise StageUpstreamError(f"{what} at {url} is unreachable: {exc}", stage=stage) from exc
        except ValueError as exc:
            raise StageUpstreamError(f"{what} at {url} answered with invalid JSON", stage=stage) from exc

    async def call_stage(self, url: str, stage: str, payload: dict[str, Any], headers: dict[str, str]) -> Any:
        """POST a stage call and return its ``result``; the callee's error is re-raised as it was."""
        status, body = await self._post_json(url, payload, headers, what=f"stage {stage!r}", stage=stage)
        if status != 200:
            raise from_body(status, body, stage=stage, url=url)
        if not isinstance(body, dict) or "result" not in body:
            raise StageUpstreamError(f"stage {stage!r} at {url} answered without a result", stage=stage)
        return body["result"]

    async def call_llm(self, url: str, stage: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """POST an OpenAI request to the LLM stage's router and return the parsed response."""
        status, payload = await self._post_json(url, body, headers, what=f"LLM stage {stage!r}", stage=stage)
        if status != 200 or not isinstance(payload, dict):
            raise StageUpstreamError(
                f"LLM stage {stage!r} at {url} answered HTTP {status}: {_error_message(payload)}",
                stage=stage, status=504 if status == 504 else 502,
            )
        return payload

    async def stream_llm(
        self, url: str, stage: str, body: dict[str, Any], headers: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """POST a streaming OpenAI request and yield each ``data:`` chunk, parsed, until ``[DONE]``."""
        try:
            async with self.session.post(url, json=body, headers=headers) as resp:
                if resp.status != 200:
                    raw = await resp.read()
                    try:
                        message = _error_message(json.loads(raw))
                    except ValueError:
                        message = raw[:256].decode(errors="replace")
                    raise StageUpstreamError(
                        f"LLM stage {stage!r} at {url} answered HTTP {resp.status}: {message}", stage=stage
                    )
                async for line in resp.content:
                    text = line.decode().strip()
                    if not text.startswith("data:"):
                        continue
                    data = text[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if isinstance(chunk, dict) and "error" in chunk:
                        raise StageUpstreamError(
                            f"LLM stage {stage!r} at {url} failed mid-stream: {_error_message(chunk)}", stage=stage
                        )
                    yield chunk
            raise StageUpstreamError(f"LLM stage {stage!r} at {url}: the stream ended without [DONE]", stage=stage)
        except PipelineRunError:
            raise
        except _TRANSPORT_ERRORS as exc:
            raise StageUpstreamError(f"LLM stage {stage!r} at {url} is unreachable: {exc}", stage=stage) from exc
        except ValueError as exc:
            raise StageUpstreamError(f"LLM stage {stage!r} at {url} streamed invalid JSON", stage=stage) from exc

    async def proxy(
        self, url: str, body: bytes, headers: dict[str, str], *, stage: str, timeout_s: float
    ) -> tuple[int, str, AsyncIterator[bytes]]:
        """Forward an OpenAI request: status, content type and the body as it arrives (for streams).

        A 5xx answer is not relayed (it may name workers): it becomes a ``StageUpstreamError``.
        ``timeout_s`` bounds the whole exchange, stream included.
        """
        timeout = aiohttp.ClientTimeout(total=max(timeout_s, 0.001), sock_connect=10)
        try:
            resp = await self.session.post(
                url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=timeout
            )
        except (TimeoutError, *_TRANSPORT_ERRORS) as exc:
            status = 504 if isinstance(exc, TimeoutError) else 502
            raise StageUpstreamError(f"LLM stage {stage!r} at {url} is unreachable: {exc!r}", stage=stage, status=status) from exc
        if resp.status >= 500:
            try:
                detail = (await resp.content.read(_ERROR_BODY_LIMIT)).decode(errors="replace")
            except (TimeoutError, *_TRANSPORT_ERRORS):
                detail = ""
            finally:
                resp.release()
            raise StageUpstreamError(
                f"LLM stage {stage!r} at {url} answered HTTP {resp.status}: {detail[:512]}",
                stage=stage, status=504 if resp.status == 504 else 502,
            )

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for piece in resp.content.iter_any():
                    yield piece
            finally:
                resp.release()

        return resp.status, resp.headers.get("Content-Type", "application/json"), chunks()
