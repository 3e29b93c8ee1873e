"""How a stage call reaches its stage: the runtime binds an ``Invoker``; without one, calls run in-process.

A pipeline body is plain async Python; ``await retrieve(q)`` asks the current invoker to run the stage.
The pipeline server binds one that checks the call is an edge of the graph, applies timeouts and
retries, and sends it to the stage's pod or runs it in-process; LLM calls go to the router.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from grove_pipelines.errors import GrovePipelinesError

if TYPE_CHECKING:
    from grove_pipelines.sdk.llm import LLM
    from grove_pipelines.sdk.stage import Stage

__all__ = [
    "DirectInvoker",
    "Invoker",
    "NoLLMRuntimeError",
    "bind_invoker",
    "current_invoker",
    "reset_invoker",
    "set_invoker",
]


class NoLLMRuntimeError(GrovePipelinesError):
    """An LLM stage was called with no runtime bound (outside `grove-pipelines run` or a pod)."""


class Invoker(Protocol):
    """What a runtime provides to execute stage and LLM calls."""

    async def call_stage(self, stage: Stage, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a Python stage and return its result."""
        ...

    async def call_llm(self, llm: LLM, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST an OpenAI request (``/v1/completions`` or ``/v1/chat/completions``) for ``llm``."""
        ...

    def stream_llm(self, llm: LLM, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST a streaming OpenAI request and yield its parsed chunks."""
        ...


class DirectInvoker:
    """The default: Python stages run in this process, as plain function calls; LLM calls need a runtime."""

    async def call_stage(self, stage: Stage, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await stage.run_local(*args, **kwargs)

    async def call_llm(self, llm: LLM, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise NoLLMRuntimeError(
            f"LLM stage {llm.name!r} was called with no runtime; run the pipeline with `grove-pipelines run`"
        )

    def stream_llm(self, llm: LLM, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise NoLLMRuntimeError(
            f"LLM stage {llm.name!r} was called with no runtime; run the pipeline with `grove-pipelines run`"
        )


_DIRECT = DirectInvoker()
_INVOKER: contextvars.ContextVar[Invoker | None] = contextvars.ContextVar(
    "grove_pipelines_invoker", default=None
)


def current_invoker() -> Invoker:
    """The invoker stage calls in this context go through (in-process when none is bound)."""
    return _INVOKER.get() or _DIRECT


def set_invoker(invoker: Invoker) -> contextvars.Token[Invoker | None]:
    """:func:`bind_invoker` without a context manager (a server binds one per request: no generator for
    it); undo with :func:`reset_invoker` and the token."""
    return _INVOKER.set(invoker)


def reset_invoker(token: contextvars.Token[Invoker | None]) -> None:
    """Undo :func:`set_invoker`."""
    _INVOKER.reset(token)


@contextmanager
def bind_invoker(invoker: Invoker) -> Iterator[Invoker]:
    """Route every stage call made in this context (and tasks it spawns) through ``invoker``."""
    token = set_invoker(invoker)
    try:
        yield invoker
    finally:
        reset_invoker(token)
