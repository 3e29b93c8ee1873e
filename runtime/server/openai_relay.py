"""The OpenAI pass-through's relay of an LLM stage's event stream: whole, or ended with an error event.

A stream the router broke off mid-answer ends with an error event (the server's JSON error shape,
no internal detail) and then short, without the chunked terminator, so no client takes the short
answer for a whole one; the router's own relay does the same. One that broke only after
``data: [DONE]`` ends cleanly: the client has every byte of the answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from runtime.http import StreamBroken
from runtime.http.sse_tail import SseTail
from runtime.server.errors import PipelineRunError

__all__ = ["relay_events"]

log = logging.getLogger("grove_pipelines.server")


async def relay_events(chunks: AsyncIterator[bytes], request_id: str) -> AsyncIterator[bytes]:
    """``chunks`` as they come; a failure after the first is told in the stream, then :class:`StreamBroken`."""
    tail = SseTail()
    try:
        async for chunk in chunks:
            tail.feed(chunk)
            yield chunk
    except PipelineRunError as exc:
        if tail.done:  # only the framing's end is missing
            return
        log.warning("request %s: relayed stream broke off: %s", request_id, exc.message)
        yield tail.error_event(json.dumps(exc.body(request_id)).encode())
        raise StreamBroken from None
