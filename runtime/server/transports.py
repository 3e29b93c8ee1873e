"""How a Python stage call travels: in this process, over HTTP to its stage server, or (local Ray) a handle.

The executor picks one transport per stage when it starts; edge checks, timeouts, retries and the
loop guard happen before a transport is asked, so every transport gets them for free.
"""

from __future__ import annotations

from typing import Any, Protocol

from grove_pipelines.sdk import Stage
from runtime.http import header_lines
from runtime.server.call_protocol import CALLER_HEADER, stage_path
from runtime.server.llm_calls import llm_headers
from runtime.server.stage_client import JSON_CONTENT, StageClient
from runtime.server.value_codec import ResultDecoder, encode_json, result_decoder

__all__ = ["HTTPStageTransport", "InProcessTransport", "StageTransport"]


class StageTransport(Protocol):
    """Runs one call of a Python stage somewhere and returns its result."""

    async def call(
        self, stage: Stage, args: tuple[Any, ...], kwargs: dict[str, Any], *, caller: str, request_id: str
    ) -> Any:
        """Run ``stage(*args, **kwargs)`` and return the result (errors as ``PipelineRunError``)."""
        ...


class InProcessTransport:
    """The stage's code runs here, as a plain await (class stages: one instance per process)."""

    async def call(
        self, stage: Stage, args: tuple[Any, ...], kwargs: dict[str, Any], *, caller: str, request_id: str
    ) -> Any:
        return await stage.run_local(*args, **kwargs)


class HTTPStageTransport:
    """The stage runs on its own server (a stage clique's pods): ``POST {base}/v1/stages/{name}``.

    ``token`` is the pipeline's stage token (the stage server refuses calls without it); the
    request's deadline goes along, so the stage server stops when the caller would. What is the
    same on every call of a stage (its URL, its result's decoder, the constant headers) is made on
    its first call; the constant headers are encoded once per calling node.
    """

    def __init__(self, base_url: str, client: StageClient, *, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self._fixed = dict([JSON_CONTENT])
        if token:
            self._fixed["Authorization"] = f"Bearer {token}"
        self._targets: dict[Stage, tuple[str, str, str, ResultDecoder]] = {}
        """A called stage's name (read once from its pydantic spec), URL, description and result decoder."""
        self._heads: dict[str, bytes] = {}  # calling node -> its constant header lines, encoded

    async def call(
        self, stage: Stage, args: tuple[Any, ...], kwargs: dict[str, Any], *, caller: str, request_id: str
    ) -> Any:
        target = self._targets.get(stage)
        if target is None:
            name = stage.spec.name
            target = self._targets[stage] = (
                name,
                self.base_url + stage_path(name),
                f"stage {name!r}",
                result_decoder(stage),
            )
        name, url, what, decoder = target
        body = encode_json({"args": args, "kwargs": kwargs})  # the tuple goes as a JSON array
        head = self._heads.get(caller)
        if head is None:
            head = self._heads[caller] = header_lines({**self._fixed, CALLER_HEADER: caller}, url)
        # the run's id, session and deadline travel on
        headers = head + header_lines(llm_headers(request_id, implied_session=True), url)
        return decoder.decode(await self.client.call_stage(url, body, headers, what=what, stage=name))
