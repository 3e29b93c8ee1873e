"""An upstream that answers instantly, to measure what a proxy adds: raw asyncio HTTP/1.1 with keep-alive.

It speaks just enough of vLLM's OpenAI API for a router: ``/health``, ``/v1/models``, completions
and chat as JSON (Content-Length) or SSE (chunked, all chunks at once), and the NixlConnector
handshake (a request with ``do_remote_decode`` gets ``kv_transfer_params`` back). Run it as
``python -m tests.bench.fast_upstream PORT [PORT...]``; it prints ``ready`` once listening on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import sys

__all__ = ["serve"]

_MODELS = json.dumps(
    {"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "bench"}]}
).encode()
_KV = {
    "do_remote_prefill": True,
    "do_remote_decode": False,
    "remote_block_ids": [[1]],
    "remote_engine_id": "bench",
    "remote_host": "127.0.0.1",
    "remote_port": 1,
    "tp_size": 1,
}
_CHUNKS = 8


def _response(status: bytes, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: "
        + ctype
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _completion(body: bytes) -> bytes:
    req = json.loads(body)
    kv = _KV if (req.get("kv_transfer_params") or {}).get("do_remote_decode") else None
    if req.get("stream"):
        out = [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"]
        for i in range(_CHUNKS):
            event = b'data: {"id":"b","choices":[{"index":0,"text":"t%d "}]}\n\n' % i
            out.append(b"%x\r\n%s\r\n" % (len(event), event))
        done = b"data: [DONE]\n\n"
        out.append(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
        return b"".join(out)
    answer = {
        "id": "b",
        "object": "text_completion",
        "model": "tiny",
        "choices": [{"index": 0, "text": "t0 t1 t2 t3", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 4},
        "kv_transfer_params": kv,
    }
    return _response(b"200 OK", json.dumps(answer).encode())


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line[15:])
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            method, path = head[0].split(" ", 2)[:2]
            assert self.transport is not None
            self.transport.write(self._answer(method, path.split("?", 1)[0], body))

    @staticmethod
    def _answer(method: str, path: str, body: bytes) -> bytes:
        if path == "/health":
            return _response(b"200 OK", b"")
        if path == "/v1/models":
            return _response(b"200 OK", _MODELS)
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            return _completion(body)
        return _response(b"404 Not Found", b'{"error":{"message":"not found","type":"x","code":404}}')


async def serve(ports: list[int]) -> None:
    """Listen on each port of 127.0.0.1 until cancelled."""
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(_Conn, "127.0.0.1", port, backlog=4096) for port in ports]
    print("ready", flush=True)
    try:
        await asyncio.gather(*(s.serve_forever() for s in servers))
    finally:
        for s in servers:
            s.close()


if __name__ == "__main__":
    try:
        from uvloop import new_event_loop as factory
    except ImportError:
        factory = None  # type: ignore[assignment]
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve([int(p) for p in sys.argv[1:]]))
