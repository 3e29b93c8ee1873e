"""Server-sent events of one pipeline run, and watching a client for disconnects.

A streamed run sends ``event: token`` for each piece of text of the answering LLM stage, then one
``event: result`` (data: the pipeline's result, as the non-streamed endpoint returns it) or one
``event: error`` (data: the JSON error). If the client goes away, the run is cancelled, which cancels
every stage and LLM call in flight under it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from starlette.types import Receive, Scope, Send

from runtime.server.failures import describe_failure
from runtime.server.llm_calls import TokenSink
from runtime.server.wire import REQUEST_ID_HEADER, encode

__all__ = ["ClientGone", "EventStream", "format_event", "run_until_disconnect"]

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready; the run was cancelled."""


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def run_until_disconnect(receive: Receive, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro``, cancelling it (and raising ``ClientGone``) if the client disconnects first.

    Call it after the request body was read: from then on, the server's ``receive`` only returns
    when the connection drops.
    """
    task = asyncio.ensure_future(coro)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():  # the client left, or this handler itself was cancelled
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        watcher.cancel()
    if task.cancelled() and watcher.done():
        raise ClientGone()
    return task.result()


def format_event(event: str, data: Any) -> bytes:
    """One SSE event: ``event: <name>`` and a single-line JSON ``data:``."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventStream:
    """An ASGI response that runs ``run(sink)`` and streams its tokens, then its result or error.

    The error event carries what :func:`describe_failure` lets a client see; ``where`` names the
    request in the log line that holds the rest.
    """

    def __init__(
        self,
        run: Callable[[TokenSink], Awaitable[Any]],
        *,
        request_id: str,
        where: str,
        on_finish: Callable[[str], None] | None = None,
    ) -> None:
        self.run = run
        self.request_id = request_id
        self.where = where
        self.headers = {REQUEST_ID_HEADER: request_id}
        self.on_finish = on_finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        task = asyncio.ensure_future(self.run(queue.put_nowait))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        watcher.add_done_callback(lambda _: task.cancel())
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        outcome = "cancelled"
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            while (item := await queue.get()) is not None:
                await send({"type": "http.response.body", "body": format_event("token", item), "more_body": True})
            if task.cancelled():
                return
            error = task.exception()
            if error is None:
                outcome, last = "200", format_event("result", encode(task.result()))
            else:
                status, body = describe_failure(error, self.request_id, where=self.where)
                outcome, last = str(status), format_event("error", body)
            await send({"type": "http.response.body", "body": last, "more_body": False})
        except OSError:  # the client went away while we were sending
            outcome = "cancelled"
        finally:
            watcher.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if self.on_finish is not None:
                self.on_finish(outcome)
