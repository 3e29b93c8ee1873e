"""A lean HTTP/1.1 load generator (raw asyncio, keep-alive), so the client costs less than what it measures.

Each connection sends one request after another: for a fixed time (saturation throughput) or a
fixed count (latency). It records the latency of every request and, for chunked answers, the time
to the first body chunk. Answers may use Content-Length or chunked transfer encoding.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Result", "request_bytes", "run_load"]


@dataclass
class Result:
    """What one load run measured (seconds)."""

    latencies: list[float] = field(default_factory=list)
    first_chunk: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float, which: str = "latencies") -> float:
        """The q-th percentile (0–100) of ``latencies`` or ``first_chunk``, in milliseconds."""
        values = sorted(getattr(self, which))
        if not values:
            return float("nan")
        if len(values) == 1:
            return values[0] * 1000
        return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, int(q) - 1))] * 1000


def request_bytes(
    host: str, port: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> bytes:
    """One keep-alive HTTP/1.1 POST of ``body`` as JSON (with ``headers``), ready to write."""
    data = json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(data)}\r\n\r\n"
    ).encode() + data


async def _one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, float | None]:
    """Send one request, read the whole answer; returns (status, seconds to first chunk or None)."""
    start = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    first: float | None = None
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
            if size == 0:
                await reader.readline()
                break
            await reader.readexactly(size + 2)
            if first is None:
                first = time.perf_counter() - start
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, first


async def run_load(
    host: str,
    port: int,
    path: str,
    body: dict[str, Any],
    *,
    concurrency: int,
    duration: float | None = None,
    count: int | None = None,
    warmup: float = 0.5,
    headers: dict[str, str] | None = None,
) -> Result:
    """Keep ``concurrency`` connections busy for ``duration`` s (after ``warmup``) or ``count`` requests."""
    request = request_bytes(host, port, path, body, headers)
    result = Result()
    remaining = [count if count is not None else 1 << 62]
    measuring = [warmup <= 0]
    stop_at = [float("inf")]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining[0] > 0 and time.perf_counter() < stop_at[0]:
                if count is not None:
                    remaining[0] -= 1
                started = time.perf_counter()
                try:
                    status, first = await _one(reader, writer, request)
                except (asyncio.IncompleteReadError, ConnectionError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                if not measuring[0]:
                    continue
                if status != 200:
                    result.errors += 1
                    continue
                result.latencies.append(time.perf_counter() - started)
                if first is not None:
                    result.first_chunk.append(first)
        finally:
            writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(concurrency)]
    if warmup > 0:
        await asyncio.sleep(warmup)
        measuring[0] = True
    begin = time.perf_counter()
    if duration is not None:
        stop_at[0] = begin + duration
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - begin
    return result
