"""A vLLM worker that fails at random points (a double for chaos tests; raw loopback sockets).

It speaks vLLM's OpenAI completions (a JSON answer, or an SSE stream ending in ``data: [DONE]``;
as a ``prefill`` worker, a one-token answer naming its KV as vLLM's kv_producer does) and serves each
completion by a behaviour drawn from a seeded generator: a proper answer (kept alive or closed
after), a close or a reset at accept or after reading the request, a body cut short, a stream cut
after its first event, or a stall of ``stall_s``. ``/health``, ``/v1/models`` and ``/metrics`` always
answer. A request's number is the last word of its prompt; an answer is ``"answer <number>"``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
from typing import Any

__all__ = ["PROPER", "ChaosVLLM", "answer_of", "events_of"]

BEHAVIOURS = (
    "ok", "ok", "ok", "ok", "ok_then_close", "ok_then_idle_close", "close_at_accept", "reset_at_accept",
    "close_after_request", "reset_after_request", "cut_body", "cut_stream", "stall",
)  # fmt: skip
PROPER = frozenset({"ok", "ok_then_close", "ok_then_idle_close"})
"""The behaviours that send a whole answer (``ok_then_idle_close``: then close the kept-alive
connection a moment later, as a worker whose keep-alive ran out; the race a pool's reuse meets)."""
MODELS = b'{"object": "list", "data": [{"id": "tiny", "object": "model", "max_model_len": 2048}]}'


def _http(status: str, content_type: bytes, body: bytes, *, close: bool = False) -> bytes:
    head = b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n" % (
        status.encode(),
        content_type,
        len(body),
    )
    return head + (b"connection: close\r\n" if close else b"") + b"\r\n" + body


def events_of(number: int) -> list[bytes]:
    """The SSE events of request ``number``'s streamed answer, ``data: [DONE]`` last."""
    pieces = [b"answer ", b"%d" % number]
    chunks = [
        b"data: " + json.dumps({"id": f"c{number}", "choices": [{"index": 0, "text": p.decode()}]}).encode()
        for p in pieces
    ]
    return [c + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def answer_of(number: int) -> dict[str, Any]:
    """Request ``number``'s whole (not streamed) answer."""
    return {
        "id": f"c{number}",
        "object": "text_completion",
        "model": "tiny",
        "choices": [{"index": 0, "text": f"answer {number}", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }


class ChaosVLLM:
    """A worker that serves each completion by the next drawn behaviour."""

    def __init__(self, seed: int, role: str = "worker", stall_s: float = 0.6) -> None:
        self.rng = random.Random(seed)
        self.role = role
        self.stall_s = stall_s
        self.url = ""
        self.served: list[tuple[int, str]] = []
        self._server: asyncio.Server | None = None
        self._serving: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        """Stop listening and end every connection still served (a stall among them)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)
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
            await asyncio.sleep(self.stall_s)
            return False
        if streamed and self.role != "prefill":  # (a prefill leg is never streamed)
            events = events_of(number)
            if behaviour == "cut_stream":
                events = events[:1]
            chunked = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
            cut = behaviour in ("cut_stream", "cut_body")
            head_out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            if behaviour == "ok_then_close":
                head_out += b"connection: close\r\n"
            writer.write(head_out + b"\r\n" + (chunked if cut else chunked + b"0\r\n\r\n"))
            await writer.drain()
            if cut:
                return False
        else:
            whole = answer_of(number)
            if self.role == "prefill":  # vLLM's kv_producer: a one-token answer naming the KV it holds
                whole = {**whole, "kv_transfer_params": {"remote_engine_id": "e", "remote_block_ids": [1]}}
            answer = _http(
                "200 OK", b"application/json", json.dumps(whole).encode(), close=behaviour == "ok_then_close"
            )
            if behaviour in ("cut_body", "cut_stream"):
                writer.write(answer[: answer.index(b"\r\n\r\n") + 10])
                await writer.drain()
                return False
            writer.write(answer)
            await writer.drain()
        if behaviour == "ok_then_idle_close":
            await asyncio.sleep(self.rng.choice((0, 0.0005, 0.002)))
            return False
        return behaviour != "ok_then_close"
