"""The router in front of two workers that fail at random points: every client gets a whole answer or a clean error.

Two loopback workers (raw sockets, speaking vLLM's OpenAI completions: a JSON answer, or an SSE
stream ending in ``data: [DONE]``) serve each completion by a behaviour drawn from a seeded
generator: a proper answer (kept alive or closed after), a close or a reset at accept or after
reading the request, a body cut short, a stream cut after its first event, or a stall that outlasts
the router's read timeout. Their ``/health`` and ``/v1/models`` always answer, and ejection is off,
so every request meets the chaos. Sequential and concurrent requests, streamed and not; aggregated
workers, and prefill/decode pairs (the prefill answer names its KV, as vLLM's kv_producer does).

The reference is what each request asked for (its number is in its prompt): a 200 must carry exactly
that request's answer (streamed: its pieces in order, then ``[DONE]``); a stream that broke after its
first byte must end with an error event and no ``[DONE]``; anything else is a JSON error with a 5xx
status and an error type. No request may outlast a bound set from the router's own deadlines.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
from typing import Any

import aiohttp
import pytest

from tests.runtime.conftest import MakeRouter

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

READ_TIMEOUT = 0.2
"""The router's read timeout: a stalled worker costs this much per attempt."""
BOUND = 10.0
"""Any request ends within this: three attempts of a stalled worker each, and the rest is instant."""
BEHAVIOURS = (
    "ok", "ok", "ok", "ok", "ok_then_close", "close_at_accept", "reset_at_accept",
    "close_after_request", "reset_after_request", "cut_body", "cut_stream", "stall",
)  # fmt: skip
MODELS = b'{"object": "list", "data": [{"id": "tiny", "object": "model", "max_model_len": 2048}]}'


def _http(status: str, content_type: bytes, body: bytes, *, close: bool = False) -> bytes:
    head = b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n" % (
        status.encode(),
        content_type,
        len(body),
    )
    return head + (b"connection: close\r\n" if close else b"") + b"\r\n" + body


def _events(number: int) -> list[bytes]:
    pieces = [b"answer ", b"%d" % number]
    chunks = [
        b"data: " + json.dumps({"id": f"c{number}", "choices": [{"index": 0, "text": p.decode()}]}).encode()
        for p in pieces
    ]
    return [c + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def _whole(number: int) -> dict[str, Any]:
    return {
        "id": f"c{number}",
        "object": "text_completion",
        "model": "tiny",
        "choices": [{"index": 0, "text": f"answer {number}", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }


class ChaosVLLM:
    """A worker that serves each completion by the next drawn behaviour."""

    def __init__(self, seed: int, role: str = "worker") -> None:
        self.rng = random.Random(seed)
        self.role = role
        self.url = ""
        self.served: list[tuple[int, str]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; whether the connection stays open for the next."""
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1]
        if target in (b"/health", b"/v1/models", b"/metrics"):
            writer.write(_http("200 OK", b"application/json", MODELS if target == b"/v1/models" else b"{}"))
            await writer.drain()
            return True
        behaviour = self.rng.choice(BEHAVIOURS)
        await asyncio.sleep(self.rng.choice((0, 0, 0.0005, 0.002)))
        if behaviour in ("close_at_accept", "reset_at_accept"):  # the request is never read
            if behaviour == "reset_at_accept":
                self._reset(writer)
            return False
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        body = json.loads(await reader.readexactly(length))
        number, streamed = int(body["prompt"].split()[-1]), bool(body.get("stream"))
        self.served.append((number, behaviour))
        if behaviour == "close_after_request":
            return False
        if behaviour == "reset_after_request":
            self._reset(writer)
            return False
        if behaviour == "stall":
            await asyncio.sleep(READ_TIMEOUT * 3)
            return False
        if self.role == "prefill":  # vLLM's kv_producer: a one-token answer naming the KV it holds
            whole = {
                **_whole(number),
                "kv_transfer_params": {"remote_engine_id": "e", "remote_block_ids": [1]},
            }
            answer = _http("200 OK", b"application/json", json.dumps(whole).encode())
        elif streamed:
            events = _events(number)
            if behaviour == "cut_stream":
                events = events[:1]
            chunked = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
            cut = behaviour in ("cut_stream", "cut_body")
            head_out = (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            writer.write(head_out + (chunked if cut else chunked + b"0\r\n\r\n"))
            await writer.drain()
            return not cut and behaviour != "ok_then_close"
        else:
            answer = _http("200 OK", b"application/json", json.dumps(_whole(number)).encode())
        if behaviour in ("cut_body", "cut_stream"):
            writer.write(answer[: answer.index(b"\r\n\r\n") + 10])
            await writer.drain()
            return False
        writer.write(answer)
        await writer.drain()
        return behaviour != "ok_then_close"


async def _client(http: aiohttp.ClientSession, url: str, number: int, streamed: bool) -> None:
    """One request, checked against what request ``number`` must get."""
    body = {"model": "tiny", "prompt": f"request {number}", "max_tokens": 2, "stream": streamed}
    cut = False
    async with http.post(f"{url}/v1/completions", json=body) as r:
        raw = b""
        try:
            async for piece in r.content.iter_any():
                raw += piece
        except aiohttp.ClientPayloadError:  # the router ends a broken stream short, after its error event
            cut = True
    if r.status != 200:
        assert r.status >= 500 and not cut, (number, r.status, raw)
        assert json.loads(raw)["error"]["type"], (number, raw)
        return
    if not streamed:
        assert not cut and json.loads(raw)["choices"][0]["text"] == f"answer {number}", (number, raw)
        return
    events = [e.removeprefix("data: ") for e in raw.decode().split("\n\n") if e]
    if not cut:
        assert events[-1] == "[DONE]", (number, events)
        pieces = [json.loads(e)["choices"][0]["text"] for e in events[:-1]]
        assert "".join(pieces) == f"answer {number}", (number, events)
        return
    # broke after the first byte: the client is told, and what came before is this request's own
    assert "[DONE]" not in events and json.loads(events[-1])["error"]["type"], (number, events)
    pieces = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])
    assert f"answer {number}".startswith(pieces), (number, events)


@pytest.mark.parametrize(("mode", "seed"), [("aggregated", 7), ("aggregated", 8), ("pd", 9)])
async def test_workers_failing_at_random_points_give_every_client_a_whole_answer_or_a_clean_error(
    make_router: MakeRouter, mode: str, seed: int
) -> None:
    roles = ["worker", "worker"] if mode == "aggregated" else ["prefill", "prefill", "decode", "decode"]
    workers = [ChaosVLLM(seed + 100 * i, role) for i, role in enumerate(roles)]
    for w in workers:
        await w.start()
    pools = {role: [w.url for w in workers if w.role == role] for role in set(roles)}
    router = await make_router(
        **pools,
        policy="round_robin",
        retry={"backoff_base": 0},
        health={"eject_after": 1_000_000},
        timeouts={"read": READ_TIMEOUT},
    )
    rng = random.Random(seed)
    number = 0
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND * 2)) as http:
            for batch in range(60):
                size = 1 if batch % 3 else 4
                numbers = list(range(number, number + size))
                number += size
                await asyncio.wait_for(
                    asyncio.gather(*(_client(http, router.url, n, rng.random() < 0.5) for n in numbers)),
                    BOUND,
                )
    finally:
        for w in workers:
            await w.stop()
    served = [b for w in workers for _, b in w.served]
    assert "ok" in served and len(set(served)) > 5  # the chaos happened, and answers too
