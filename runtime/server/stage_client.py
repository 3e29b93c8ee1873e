"""The server's only HTTP client: its calls of stage servers and of LLM stages' routers, over ``runtime.http``'s pool.

Every failure of the pool (an :class:`~runtime.errors.UpstreamError`) is translated here, into
``StageUpstreamError`` naming the stage and URL (those messages go to the log; a client sees only
the stage and the error type). Timeouts are the executor's (each call is bounded by its stage's
``timeout_s`` and the request's deadline; cancelling a call closes its socket, which is how a stage
server or vLLM learns to stop). A stream counts as complete only when it ends with
``data: [DONE]``: one that stops early failed, whatever its last chunk said. An answer vLLM
aborted (``finish_reason: abort``) failed too, though it ends like a whole one.

An LLM call (a pipeline body's, or the OpenAI pass-through's) whose router answers busy (429 or 503)
with a ``Retry-After`` of a few seconds is sent again after that wait, twice at most, as OpenAI's own
client does by default, and only while the deadline leaves time for it: the router says that when
every worker is briefly unhealthy or its queue is full, and a moment later it serves. The stage's
``retries`` are not spent on it. A router still busy after that (or asking for a longer wait) makes
the call fail with ``StageBusyError``: the client gets the router's status and ``Retry-After``, not
a 502.

A Python stage's server that is draining (SIGTERM: a rolling update, a scale-down) refuses the call
before running it, so sending it again is safe whatever the stage does: at once (behind a Service,
the new connection reaches another replica), then once more after its ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from runtime.errors import UpstreamError
from runtime.http import UpstreamPool, UpstreamReply
from runtime.http.json_wire import decode_like_stdlib
from runtime.server.deadline import Deadline, current_deadline
from runtime.server.errors import (
    DrainingError,
    PipelineRunError,
    StageBusyError,
    StageUpstreamError,
    from_body,
)

__all__ = ["JSON_CONTENT", "StageClient"]

_ERROR_BODY_LIMIT = 64 * 1024
_LINE_LIMIT = 16 * 1024 * 1024  # one SSE line of a router's stream (a chunk is a few hundred bytes)
_CONNECT_S = 10.0
_SILENCE_S = 24 * 3600.0  # no read timeout of its own: the executor's deadlines bound every call
_BUSY = (429, 503)
_BUSY_RETRIES = 2  # OpenAI's client's default max_retries
_BUSY_WAIT_MAX_S = 10  # a longer Retry-After is not waited for: the client is told it
_RETRY_AFTER_DIGITS = 6  # a longer delay-seconds value is not a router's (it says 1)
JSON_CONTENT = ("Content-Type", "application/json")
"""The header every call this client makes carries (its bodies are JSON)."""
_JSON = dict([JSON_CONTENT])


log = logging.getLogger("grove.server")


def _retry_after(reply: UpstreamReply) -> int | None:
    """The answer's ``Retry-After`` in seconds; None unless it is the delay-seconds form (the router's)."""
    value = reply.headers.get("retry-after", "").strip()
    if not (value.isascii() and value.isdigit()) or len(value) > _RETRY_AFTER_DIGITS:
        return None
    return int(value)


def _busy_wait(
    attempt: int, status: int, wait: int | None, deadline: Deadline | None, *, what: str, url: str, stage: str
) -> int:
    """The seconds to wait before the call, answered busy (``status``, ``Retry-After`` ``wait``) on its
    ``attempt``, is sent again; ``StageBusyError`` when it is not sent again: after the last attempt,
    without a ``Retry-After``, or when the wait is long (over ``_BUSY_WAIT_MAX_S``) or outlasts
    ``deadline`` (None: none)."""
    if (
        attempt == _BUSY_RETRIES
        or wait is None
        or wait > _BUSY_WAIT_MAX_S
        or (deadline is not None and deadline.remaining() <= wait)
    ):
        log.warning("%s at %s is busy (HTTP %d, retry after %s s)", what, url, status, wait)
        raise StageBusyError(stage, status, wait)
    log.info("%s at %s is busy (HTTP %d): sent again in %d s", what, url, status, wait)
    return wait


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


def _aborted(answer: object) -> bool:
    """Whether vLLM ended the answer (or this chunk of it) as aborted: cut short, though it looks whole
    (``finish_reason: abort``, and a stream still ends with ``[DONE]``)."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") == "abort" for c in choices
    )


def _status_of(exc: UpstreamError) -> int:
    """504 when the upstream was too slow, else 502."""
    return 504 if isinstance(exc.__cause__, TimeoutError) else 502


async def _relayed(reply: UpstreamReply, what: str, stage: str) -> AsyncIterator[bytes]:
    """An answer's bytes as they arrive; one cut short is a ``StageUpstreamError`` (504 when too slow)."""
    chunks = reply.chunks()
    try:
        async for chunk in chunks:
            yield chunk
    except UpstreamError as exc:
        raise _cut(exc, what, stage) from None
    finally:
        await chunks.aclose()


async def _held(reply: UpstreamReply, what: str, stage: str) -> AsyncIterator[bytes]:
    """The answer whole, as one piece: read within the pool's bound on an answer's size."""
    try:
        yield await reply.read()
    except UpstreamError as exc:
        raise _cut(exc, what, stage) from None


def _unreachable(exc: UpstreamError, what: str, url: str, stage: str) -> StageUpstreamError:
    return StageUpstreamError(f"{what} at {url} is unreachable: {exc}", stage=stage, status=_status_of(exc))


async def _json_answer(reply: UpstreamReply, what: str, url: str, stage: str) -> tuple[int, Any]:
    """The answer's status and parsed JSON body; cut short or not JSON becomes a ``StageUpstreamError``."""
    try:
        raw = await reply.read()
    except UpstreamError as exc:
        raise StageUpstreamError(f"{what} at {url} failed mid-answer: {exc}", stage=stage) from exc
    try:
        return reply.status, decode_like_stdlib(raw)
    except ValueError as exc:
        raise StageUpstreamError(f"{what} at {url} answered with invalid JSON", stage=stage) from exc


def _cut(exc: UpstreamError, what: str, stage: str) -> StageUpstreamError:
    return StageUpstreamError(f"{what} failed mid-answer: {exc}", stage=stage, status=_status_of(exc))


async def _head_of(reply: UpstreamReply, limit: int = _ERROR_BODY_LIMIT) -> bytes:
    """At most ``limit`` bytes of an answer's body (for the log); the rest is not read."""
    kept = b""
    pieces = reply.chunks()
    try:
        async for piece in pieces:
            kept += piece
            if len(kept) >= limit:
                break
    except UpstreamError:
        pass
    finally:
        aclose = getattr(pieces, "aclose", None)  # an async generator: closing it closes the reply
        if aclose is not None:
            await aclose()
    return kept[:limit]


class StageClient:
    """Calls the stage servers and routers this server calls, over one keep-alive pool; :meth:`aclose` it at exit."""

    def __init__(self) -> None:
        self.pool = UpstreamPool(connect=_CONNECT_S, read=_SILENCE_S)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.pool.close()

    async def _post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        what: str,
        stage: str,
        total: float | None = None,
    ) -> UpstreamReply:
        try:
            return await self.pool.post(url, body, {**_JSON, **headers}, total=total)
        except UpstreamError as exc:
            raise _unreachable(exc, what, url, stage) from exc

    async def call_stage(
        self, url: str, body: bytes, headers: Mapping[str, str] | bytes, *, what: str, stage: str
    ) -> Any:
        """POST a stage call's JSON ``body`` (``headers`` as sent, with :data:`JSON_CONTENT`: a mapping, or
        its lines as ``runtime.http.header_lines`` encodes them) and return its ``result``.

        Unreachable, non-JSON or without a result becomes a ``StageUpstreamError`` about ``what``
        (``stage 'name'``, say); the callee's own error is raised as it was (:func:`from_body`).
        A stage server that is draining did not run the call: it is sent again at once (its answer
        closed the connection, so a Service picks another replica), then once after its ``Retry-After``
        while the deadline leaves time; still draining, the call fails with ``StageBusyError``.

        A stage call awaits it directly: the pool's coroutine under it, and nothing between, so each
        suspension resumes as few frames as can be.
        """
        for attempt in range(_BUSY_RETRIES + 1):
            try:
                reply = await self.pool.request("POST", url, body, headers)
            except UpstreamError as exc:
                raise _unreachable(exc, what, url, stage) from exc
            status, answer = await _json_answer(reply, what, url, stage)
            if status == 200:
                if not isinstance(answer, dict) or "result" not in answer:
                    raise StageUpstreamError(f"{what} at {url} answered without a result", stage=stage)
                return answer["result"]
            wait = _retry_after(reply)
            error = from_body(status, answer, stage=stage, url=url, retry_after=wait)
            if not isinstance(error, DrainingError):
                raise error
            if attempt == 0:
                log.info("%s at %s is draining: sent again at once", what, url)
                continue
            await asyncio.sleep(
                _busy_wait(attempt, status, wait, current_deadline(), what=what, url=url, stage=stage)
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_llm(
        self, url: str, body: bytes, headers: dict[str, str], *, stage: str, deadline: Deadline | None = None
    ) -> UpstreamReply:
        """POST an OpenAI request to the LLM stage's router; sent again while the router answers busy
        with a short ``Retry-After`` (see the module's docstring).

        ``deadline``: the call's own, which bounds each attempt and its answer here; None: the
        request's, which the executor enforces around the call.
        """
        what = f"LLM stage {stage!r}"
        bound = deadline if deadline is not None else current_deadline()
        for attempt in range(_BUSY_RETRIES + 1):
            total = None if deadline is None else max(deadline.remaining(), 0.001)
            reply = await self._post(url, body, headers, what=what, stage=stage, total=total)
            if reply.status not in _BUSY:
                return reply
            wait = _retry_after(reply)
            reply.close()  # its body (the router's error) is not needed
            await asyncio.sleep(
                _busy_wait(attempt, reply.status, wait, bound, what=what, url=url, stage=stage)
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def call_llm(
        self, url: str, stage: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        """POST an OpenAI request to the LLM stage's router and return the parsed response."""
        reply = await self._post_llm(url, json.dumps(body).encode(), headers, stage=stage)
        status, payload = await _json_answer(reply, f"LLM stage {stage!r}", url, stage)
        if status != 200 or not isinstance(payload, dict):
            raise StageUpstreamError(
                f"LLM stage {stage!r} at {url} answered HTTP {status}: {_error_message(payload)}",
                stage=stage,
                status=504 if status == 504 else 502,
            )
        if _aborted(payload):
            raise StageUpstreamError(f"LLM stage {stage!r} at {url}: vLLM aborted the answer", stage=stage)
        return payload

    async def stream_llm(
        self, url: str, stage: str, body: dict[str, Any], headers: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """POST a streaming OpenAI request and yield each ``data:`` chunk, parsed, until ``[DONE]``."""
        what = f"LLM stage {stage!r}"
        reply = await self._post_llm(url, json.dumps(body).encode(), headers, stage=stage)
        try:
            if reply.status != 200:
                raw = await _head_of(reply)
                try:
                    message = _error_message(json.loads(raw))
                except ValueError:
                    message = raw[:256].decode(errors="replace")
                raise StageUpstreamError(
                    f"{what} at {url} answered HTTP {reply.status}: {message}", stage=stage
                )
            pending = b""
            async for piece in reply.chunks():
                pending += piece
                *lines, pending = pending.split(b"\n")
                if len(pending) > _LINE_LIMIT:
                    raise StageUpstreamError(
                        f"{what} at {url} streamed a line over {_LINE_LIMIT} bytes", stage=stage
                    )
                for line in lines:
                    text = line.decode().strip()
                    if not text.startswith("data:"):
                        continue
                    data = text[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if isinstance(chunk, dict) and "error" in chunk:
                        raise StageUpstreamError(
                            f"{what} at {url} failed mid-stream: {_error_message(chunk)}", stage=stage
                        )
                    if _aborted(chunk):
                        raise StageUpstreamError(f"{what} at {url}: vLLM aborted the answer", stage=stage)
                    yield chunk
            raise StageUpstreamError(f"{what} at {url}: the stream ended without [DONE]", stage=stage)
        except PipelineRunError:
            raise
        except UpstreamError as exc:
            raise StageUpstreamError(
                f"{what} at {url} failed mid-stream: {exc}", stage=stage, status=_status_of(exc)
            ) from exc
        except ValueError as exc:
            raise StageUpstreamError(f"{what} at {url} streamed invalid JSON", stage=stage) from exc
        finally:
            reply.close()  # before its end: the socket closes, and the router and vLLM abort the request

    async def proxy(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        stage: str,
        timeout_s: float,
        whole: bool = False,
    ) -> tuple[int, str, AsyncIterator[bytes]]:
        """Forward an OpenAI request: status, content type and the body as it arrives (for streams), or
        ``whole``: read to its end first (a non-streamed answer cut short is then an error, not a short body).

        A 5xx answer is not relayed (it may name workers): it becomes a ``StageUpstreamError``.
        ``timeout_s`` bounds the whole exchange, stream included.
        """
        what = f"LLM stage {stage!r}"
        reply = await self._post_llm(url, body, headers, stage=stage, deadline=Deadline.within(timeout_s))
        if reply.status >= 500:
            detail = (await _head_of(reply)).decode(errors="replace")
            raise StageUpstreamError(
                f"{what} at {url} answered HTTP {reply.status}: {detail[:512]}",
                stage=stage,
                status=504 if reply.status == 504 else 502,
            )
        body_of = _held if whole else _relayed
        return reply.status, reply.content_type, body_of(reply, f"{what} at {url}", stage)
