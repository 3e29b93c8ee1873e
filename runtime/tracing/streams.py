"""A span around a stream: current while each item is fetched, ended when the stream ends, fails or is closed.

Streams outlive the call that starts them (an LLM call the pipeline iterates, an answer the server
relays chunk by chunk), so ``with span:`` cannot cover them. The span is made current only while the
next item is fetched, which is when the request carrying ``traceparent`` is sent; the consumer's code
between items stays under its own span.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from runtime.tracing.context import reset_current, set_current
from runtime.tracing.spans import Span

__all__ = ["traced_stream"]

T = TypeVar("T")


async def traced_stream(
    span: Span, items: AsyncIterator[T], on_item: Callable[[T], None] | None = None
) -> AsyncIterator[T]:
    """``items`` under ``span``; the first item's delay goes on it as ``grove.ttft_ms``, each item to ``on_item``."""
    started = time.perf_counter()
    first = True
    try:
        while True:
            token = set_current(span)
            try:
                item = await anext(items)
            except StopAsyncIteration:
                break
            finally:
                reset_current(token)
            if first:
                first = False
                span.set("grove.ttft_ms", round((time.perf_counter() - started) * 1000, 3))
            if on_item is not None:
                on_item(item)
            yield item
    except GeneratorExit:  # the consumer stopped early: not a failure of the call
        span.set("grove.stream.closed_early", True)
        raise
    except BaseException as exc:
        kind = getattr(exc, "type", None)  # the pipeline's errors name their type
        span.fail(
            kind
            if isinstance(kind, str)
            else ("cancelled" if not isinstance(exc, Exception) else type(exc).__name__)
        )
        raise
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
        span.end()
