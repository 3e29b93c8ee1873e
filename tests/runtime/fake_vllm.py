"""A test double of a vLLM OpenAI server, for the router's failure paths and for the proxy benchmark.

Real vLLM runs in the integration tests; this double exists because a failure must happen *on
cue* (HTTP 500, a dropped connection, a slow answer) and because the benchmark needs an upstream
that answers instantly. It is a real aiohttp server on 127.0.0.1 with an ephemeral port and speaks
the parts of vLLM's protocol the router relies on: ``/health``, ``/v1/models``, completions and chat
(JSON or SSE), and the NixlConnector handshake (a prefill answer carries ``kv_transfer_params``; a
decode request that brings them counts as a KV transfer). Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["FakeVLLM", "Seen"]


@dataclass
class Seen:
    """One request the fake received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    cancelled: bool = False


@dataclass
class _Cues:
    fail: list[tuple[int, str | None]] = field(default_factory=list)  # (status, Retry-After) of the next
    drop: int = 0  # next requests answered by closing the connection
    delay: float = 0.0  # seconds before answering (and between stream chunks)
    broken_body: list[int] = field(default_factory=list)  # statuses answered with a truncated body
    break_stream_after: int | None = None  # stream this many chunks of the next stream, then hang up
    stall_kv_pulls: bool = False  # decode requests that bring remote KV wait until cancelled
    abort: bool = False  # the next answer stops after one token with finish_reason "abort"


class FakeVLLM:
    """``await FakeVLLM(role="prefill").start()`` → its URL; ``await fake.stop()`` at the end."""

    def __init__(
        self, *, role: str = "aggregated", model: str = "tiny", tokens: int = 4, name: str = ""
    ) -> None:
        self.role, self.model, self.tokens = role, model, tokens
        self.name = name or role
        self.engine_id = str(uuid.uuid4())
        self.seen: list[Seen] = []
        self.cues = _Cues()
        self.healthy = True
        self.external_kv_requests = 0
        # vLLM's prefix-cache counters and cache size, as served on /metrics (tests set them)
        self.prefix_queries = 0.0
        self.prefix_hits = 0.0
        self.cache_blocks, self.block_size = 512, 128
        self.max_model_len = 2048  # reported in /v1/models, as vLLM does
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- cues -------------------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, retry_after: str | None = None) -> None:
        """Answer the next ``n`` completion requests with ``status`` (and ``Retry-After``, when given)."""
        self.cues.fail += [(status, retry_after)] * n

    def drop_next(self, n: int = 1) -> None:
        """Close the connection on the next ``n`` completion requests without answering."""
        self.cues.drop += n

    def break_body_next(self, status: int = 400) -> None:
        """Answer the next completion request with ``status`` and a body cut short (the connection closes)."""
        self.cues.broken_body.append(status)

    def break_stream_next(self, after: int) -> None:
        """Send ``after`` chunks of the next streamed answer, then close the connection mid-stream."""
        self.cues.break_stream_after = after

    def stall_kv_pulls(self) -> None:
        """Decode requests that bring ``kv_transfer_params`` never answer, as vLLM 0.32 waits on a
        dead KV producer (its NixlConnector has no deadline on the pull)."""
        self.cues.stall_kv_pulls = True

    def abort_next(self) -> None:
        """End the next answer after one token with ``finish_reason: abort``, as vLLM ends a request it
        aborted (shutting down with ``--shutdown-timeout 0``, say); a stream still ends with ``[DONE]``."""
        self.cues.abort = True

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering (and between stream chunks)."""
        self.cues.delay = seconds

    def completions(self) -> list[Seen]:
        """The completion/chat requests received so far."""
        return [s for s in self.seen if s.path.startswith("/v1/") and s.path != "/v1/models"]

    # --- server -----------------------------------------------------------------------------------
    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Listen on ``host`` (``port`` 0: an ephemeral one) and return the base URL."""
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/completions", self._complete)
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}"
        return self.url

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        labels = f'engine="0",model_name="{self.model}"'
        text = (
            f"vllm:kv_cache_usage_perc{{{labels}}} 0.0\n"
            f"vllm:prefix_cache_queries_total{{{labels}}} {self.prefix_queries}\n"
            f"vllm:prefix_cache_hits_total{{{labels}}} {self.prefix_hits}\n"
            f'vllm:cache_config_info{{block_size="{self.block_size}",enable_prefix_caching="True",'
            f'engine="0",num_gpu_blocks="{self.cache_blocks}"}} 1.0\n'
        )
        return web.Response(text=text, content_type="text/plain")

    async def _models(self, request: web.Request) -> web.Response:
        card = {
            "id": self.model,
            "object": "model",
            "owned_by": "vllm",
            "root": f"/models/{self.model}",
            "max_model_len": self.max_model_len,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen = Seen(request.path, body, {k.lower(): v for k, v in request.headers.items()})
        self.seen.append(seen)
        try:
            return await self._answer(request, body)
        except (asyncio.CancelledError, ConnectionResetError):  # the router closed the connection
            seen.cancelled = True
            raise

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if self.cues.drop:
            self.cues.drop -= 1
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        if self.cues.broken_body:
            return await self._broken(request, self.cues.broken_body.pop(0))
        if self.cues.fail:
            status, retry_after = self.cues.fail.pop(0)
            return web.json_response(
                {"error": {"message": "cued failure", "type": "x", "code": status}},
                status=status,
                headers={"Retry-After": retry_after} if retry_after is not None else None,
            )
        if body.get("model") != self.model:
            return web.json_response({"error": {"message": "model not found", "code": 404}}, status=404)
        if self.cues.delay:
            await asyncio.sleep(self.cues.delay)
        chat = request.path.endswith("/chat/completions")
        kv_in = body.get("kv_transfer_params") or {}
        n = int(body.get("max_tokens") or body.get("max_completion_tokens") or self.tokens)
        words = [f"{self.name}{i}" for i in range(n)]
        finish = "length"
        if self.cues.abort:
            self.cues.abort, words, finish = False, words[:1], "abort"
        kv_out = None
        if kv_in.get("do_remote_decode"):
            kv_out = {
                "do_remote_prefill": True,
                "do_remote_decode": False,
                "remote_block_ids": [[1, 2]],
                "remote_engine_id": self.engine_id,
                "remote_host": "127.0.0.1",
                "remote_port": 5600,
            }
        elif kv_in.get("do_remote_prefill"):
            self.external_kv_requests += 1
            if self.cues.stall_kv_pulls:
                await asyncio.Event().wait()
        if body.get("stream"):
            return await self._stream(request, words, chat, finish)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(words)},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": " ".join(words), "finish_reason": finish}
        return web.json_response(
            {
                "id": "cmpl-1",
                "object": "chat.completion" if chat else "text_completion",
                "model": self.model,
                "choices": [choice],
                "kv_transfer_params": kv_out,
            }
        )

    async def _broken(self, request: web.Request, status: int) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        resp.content_length = 1000
        await resp.prepare(request)
        await resp.write(b'{"error": {"message": "cut sh')
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError

    async def _stream(
        self, request: web.Request, words: list[str], chat: bool, finish: str
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        cut, self.cues.break_stream_after = self.cues.break_stream_after, None
        for i, word in enumerate(words):
            if cut is not None and i == cut:
                await asyncio.sleep(0.05)
                assert request.transport is not None
                request.transport.close()
                raise asyncio.CancelledError
            delta = {"delta": {"content": word + " "}} if chat else {"text": word + " "}
            chunk = {"id": "cmpl-1", "model": self.model, "choices": [{"index": 0, **delta}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if self.cues.delay:
                await asyncio.sleep(self.cues.delay)
        if finish == "abort":  # vLLM's last chunk of a request it aborted
            end = {"delta": {}} if chat else {"text": ""}
            chunk = {
                "id": "cmpl-1",
                "model": self.model,
                "choices": [{"index": 0, **end, "finish_reason": finish}],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


async def _serve_forever(host: str, port: int, model: str) -> None:
    fake = FakeVLLM(model=model)
    await fake.start(port, host)
    await asyncio.Event().wait()


if (
    __name__ == "__main__"
):  # a vLLM double in a local-runtime pod: python -m tests.runtime.fake_vllm HOST PORT MODEL
    import sys

    asyncio.run(_serve_forever(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
