"""Server-sent events of one pipeline run.

A streamed run sends ``event: token`` for each piece of text of the answering LLM stage, then one
``event: result`` (data: the pipeline's result, as the non-streamed endpoint returns it) or one
``event: error`` (data: the JSON error). If the client goes away or stops reading, the listener
closes the stream, which cancels the run and every stage and LLM call in flight under it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from runtime.server.failures import describe_failure
from runtime.server.llm_calls import TokenSink
from runtime.server.value_codec import encode

__all__ = ["event_stream", "format_event"]


def format_event(event: str, data: Any) -> bytes:
    """One SSE event: ``event: <name>`` and a single-line JSON ``data:``."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def event_stream(
    run: Callable[[TokenSink], Awaitable[Any]],
    *,
    request_id: str,
    where: str,
    on_start: Callable[[], None] | None = None,
    on_finish: Callable[[str], None] | None = None,
) -> AsyncIterator[bytes]:
    """The events of ``run(sink)``: its tokens as they come, then its result or error.

    The error event carries what :func:`describe_failure` lets a client see; ``where`` names the
    request in the log line that holds the rest. ``on_start`` is called when the run starts (the
    first read: a stream closed unread never runs), ``on_finish`` with its outcome: the status, or
    ``"cancelled"`` when the stream was closed before its end.
    """
    if on_start is not None:
        on_start()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    task = asyncio.ensure_future(run(queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    outcome = "cancelled"
    try:
        while (item := await queue.get()) is not None:
            yield format_event("token", item)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            ended, last = "200", format_event("result", encode(task.result()))
        else:
            status, body = describe_failure(error, request_id, where=where)
            ended, last = str(status), format_event("error", body)
        yield last
        outcome = ended
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if on_finish is not None:
            on_finish(outcome)
