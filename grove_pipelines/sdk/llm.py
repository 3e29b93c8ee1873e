"""``llm(...)``: a model stage served by vLLM, and the handle a pipeline body calls it through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from grove_pipelines.sdk.invoke import current_invoker
from grove_pipelines.sdk.options import build_spec
from grove_pipelines.sdk.stage import _depends_on_names
from grove_pipelines.spec import PD, LLMSpec

__all__ = ["LLM", "Messages", "llm"]

Messages = str | Sequence[dict[str, Any]]
COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"


def _messages(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


class LLM:
    """An LLM stage. In a pipeline body: ``await chat.chat("hi")``, ``await chat.complete(prompt)``,
    ``async for piece in chat.stream_chat(messages): ...``; sampling options (``max_tokens``,
    ``temperature``, ...) pass through to vLLM's OpenAI API unchanged.
    """

    def __init__(self, spec: LLMSpec, depends_on: Sequence[object] = ()) -> None:
        self.spec = spec
        self.depends_on = tuple(depends_on)

    @property
    def name(self) -> str:
        """The stage's name (its cliques are named after it)."""
        return self.spec.name

    async def request(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a raw OpenAI request body to this model (``model`` is filled in)."""
        return await current_invoker().call_llm(self, path, {"model": self.spec.model_name, **body})

    def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST a raw streaming OpenAI request and yield the parsed chunks."""
        return current_invoker().stream_llm(
            self, path, {"model": self.spec.model_name, **body, "stream": True}
        )

    async def complete(self, prompt: str, **sampling: Any) -> str:
        """Text completion: the generated text."""
        response = await self.request(COMPLETIONS, {"prompt": prompt, **sampling})
        return str(response["choices"][0]["text"])

    async def chat(self, messages: Messages, **sampling: Any) -> str:
        """Chat completion of a string (one user turn) or OpenAI messages: the assistant's reply."""
        response = await self.request(CHAT, {"messages": _messages(messages), **sampling})
        return str(response["choices"][0]["message"]["content"] or "")

    async def stream_complete(self, prompt: str, **sampling: Any) -> AsyncIterator[str]:
        """Text completion, yielded piece by piece as the model produces it."""
        async for chunk in self.stream(COMPLETIONS, {"prompt": prompt, **sampling}):
            for choice in chunk.get("choices") or ():
                if choice.get("text"):
                    yield str(choice["text"])

    async def stream_chat(self, messages: Messages, **sampling: Any) -> AsyncIterator[str]:
        """Chat completion, yielded piece by piece as the model produces it."""
        async for chunk in self.stream(CHAT, {"messages": _messages(messages), **sampling}):
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield str(content)

    def __repr__(self) -> str:
        return f"<llm {self.name!r} model={self.spec.model!r}>"


def llm(
    name: str,
    *,
    model: str,
    gpus: int = 1,
    tensor_parallel: int | None = None,
    nodes: int = 1,
    replicas: int = 1,
    disaggregated: PD | dict[str, Any] | None = None,
    vllm_args: Sequence[str] = (),
    depends_on: Sequence[object] = (),
    **options: Any,
) -> LLM:
    """Declare a model stage served by vLLM.

    Aggregated by default (one clique running ``vllm serve``); ``disaggregated=PD(prefill=Role(replicas=2),
    decode=Role(...))`` splits it into prefill and decode workers joined by vLLM's NixlConnector;
    ``nodes > 1`` makes each role a multi-node scaling group (leader + workers). ``routing`` is how the
    router sidecar spreads requests over the workers: ``"prefix"`` (the default: a prompt goes where its
    prefix is cached, a pipeline run's calls and a fan-out's siblings stay together, within a load
    guard), ``"round_robin"`` or ``"least_loaded"``. Other options: ``served_model_name``,
    ``max_model_len``, ``min_available``, ``autoscaling``, ``image``, ``env``, ``resources`` (cpu/memory
    per pod), ``timeout_s``, ``retries``. A router's busy answer (429 or 503 with a ``Retry-After`` of
    at most ten seconds) is waited out and the call sent again, twice at most and within the request's
    deadline, without spending ``retries``; still busy, the request fails with the router's status and
    ``Retry-After`` (503 or 429, not 502), so the client knows to retry it later.
    """
    spec = build_spec(
        LLMSpec,
        "llm",
        name,
        {
            "model": model,
            "gpus": gpus,
            "tensor_parallel": tensor_parallel,
            "nodes": nodes,
            "replicas": replicas,
            "disaggregated": disaggregated,
            "vllm_args": tuple(vllm_args),
            "depends_on": _depends_on_names(name, depends_on),
            **options,
        },
    )
    return LLM(spec, depends_on)
