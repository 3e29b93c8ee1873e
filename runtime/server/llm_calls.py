"""LLM calls from a pipeline to its routers, and turning them into a token stream for the client.

When a client asks for ``"stream": true``, the LLM calls the pipeline body makes itself (the stage
that answers) are sent upstream as streaming requests even if the body awaits ``chat.chat(...)``:
each piece of text goes to the request's token sink as it arrives, and the body still receives one
ordinary OpenAI response, assembled from the chunks.

Every LLM call of one pipeline run carries the run's session in ``x-session-id``, so the router keeps
an agent run's turns where its history is cached: the session the client named (``RUN_SESSION``,
set by the server from the request's session headers) or else the run's request id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from grove_pipelines.spec.stage_urls import LLM_URL_PREFIX, env_name
from runtime.router.session_headers import SESSION_HEADER
from runtime.server.call_protocol import DEADLINE_HEADER, REQUEST_ID_HEADER
from runtime.server.deadline import current_deadline
from runtime.server.errors import StageUpstreamError
from runtime.server.stage_client import StageClient

__all__ = ["RUN_SESSION", "LLMCalls", "TokenSink", "chunk_text", "llm_headers"]

RUN_SESSION: ContextVar[str | None] = ContextVar("grove_run_session", default=None)
"""The session the client named for this run; None: the run's request id is its session."""


def llm_headers(
    request_id: str, into: dict[str, str] | None = None, *, implied_session: bool = False
) -> dict[str, str]:
    """Headers of a call under the run ``request_id``: its id, its session and its deadline (if any),
    added to ``into`` (a call's other headers) when given.

    ``implied_session``: the callee is a stage server, which takes the run's id as the session when
    none is named, so a session that is the run's id is left out (a header fewer to send and parse).
    """
    headers = {} if into is None else into
    headers[REQUEST_ID_HEADER] = request_id
    session = RUN_SESSION.get()
    if session is not None or not implied_session:
        headers[SESSION_HEADER] = session or request_id
    deadline = current_deadline()
    if deadline is not None:
        headers[DEADLINE_HEADER] = deadline.header()
    return headers


TokenSink = Callable[[dict[str, Any]], None]
"""Receives ``{"stage": name, "text": piece}`` for every piece of streamed text."""


def chunk_text(chunk: Mapping[str, Any]) -> str:
    """The text a chat or completion stream chunk adds (first choice)."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        return str(text or "")
    return ""


class LLMCalls:
    """Sends OpenAI requests of the pipeline's LLM stages to their endpoints (the router sidecars)."""

    def __init__(
        self, client: StageClient, urls: Mapping[str, str], models: Mapping[str, str] | None = None
    ) -> None:
        self.client = client
        self.urls = dict(urls)
        self.models = dict(models or {})

    def body(self, stage: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with ``model`` renamed when the workers serve the model under another name."""
        served = self.models.get(stage)
        return body if served is None else {**body, "model": served}

    def url(self, stage: str, path: str) -> str:
        """The endpoint of ``stage`` for ``path``; an LLM stage without one is an upstream error."""
        base = self.urls.get(stage)
        if not base:
            raise StageUpstreamError(
                f"LLM stage {stage!r} has no endpoint: set {env_name(LLM_URL_PREFIX, stage)} "
                "(grove-pipelines run and the compiled pods set it)",
                stage=stage,
            )
        return base + path

    async def call(
        self, stage: str, path: str, body: dict[str, Any], request_id: str, sink: TokenSink | None
    ) -> dict[str, Any]:
        """One OpenAI request; streamed upstream (and reported to ``sink``) when a sink is given."""
        headers = llm_headers(request_id)
        url = self.url(stage, path)
        body = self.body(stage, body)
        if sink is None or body.get("stream") or int(body.get("n") or 1) != 1:
            return await self.client.call_llm(url, stage, body, headers)
        chat = "messages" in body
        request = {**body, "stream": True, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        first: Mapping[str, Any] = {}
        finish: str | None = None
        usage: Any = None
        async for chunk in self.client.stream_llm(url, stage, request, headers):
            first = first or chunk
            text = chunk_text(chunk)
            if text:
                pieces.append(text)
                sink({"stage": stage, "text": text})
            for choice in chunk.get("choices") or ():
                finish = choice.get("finish_reason") or finish
            usage = chunk.get("usage") or usage
        text = "".join(pieces)
        content = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        return {
            "id": first.get("id"),
            "object": "chat.completion" if chat else "text_completion",
            "model": first.get("model", body.get("model")),
            "choices": [{"index": 0, "finish_reason": finish, **content}],
            "usage": usage,
        }

    async def stream(
        self, stage: str, path: str, body: dict[str, Any], request_id: str, sink: TokenSink | None
    ) -> AsyncIterator[dict[str, Any]]:
        """A streaming OpenAI request the pipeline consumes itself; pieces also go to ``sink``."""
        url = self.url(stage, path)
        async for chunk in self.client.stream_llm(
            url, stage, self.body(stage, body), llm_headers(request_id)
        ):
            if sink is not None:
                text = chunk_text(chunk)
                if text:
                    sink({"stage": stage, "text": text})
            yield chunk
