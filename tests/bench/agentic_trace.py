"""Agentic traffic for routing benchmarks: a deterministic trace generator and a streaming replay client.

A trace is N sessions. Each session belongs to an agent type with its own long system prompt and
tool descriptions (shared by every session of that type), and runs a multi-turn conversation whose
history grows turn by turn. Sessions arrive as a Poisson process; turns within a session are sequential
(the next user turn is sent after the previous answer plus a think time), as an agent loop does.
Everything is drawn from one seed, so every router sees byte-identical requests.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Sequence

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "RequestResult",
    "Session",
    "Summary",
    "Trace",
    "TraceRequest",
    "generate_trace",
    "replay",
    "summarize",
]

WORDS = [
    "grove",
    "clique",
    "gang",
    "prefill",
    "decode",
    "router",
    "cache",
    "prefix",
    "worker",
    "schedule",
    "replica",
    "token",
    "stream",
    "pipeline",
    "stage",
    "model",
    "retrieve",
    "index",
    "vector",
    "search",
    "answer",
    "question",
    "agent",
    "tool",
    "call",
    "result",
    "context",
    "memory",
    "budget",
    "latency",
    "throughput",
    "queue",
    "policy",
    "affinity",
    "session",
    "history",
    "turn",
    "reply",
    "check",
    "ground",
    "source",
    "document",
    "summary",
    "plan",
    "step",
    "observe",
    "act",
    "reflect",
    "retry",
    "limit",
    "timeout",
    "health",
    "metric",
    "label",
    "selector",
]


class TraceRequest(BaseModel):
    """One chat request of a session: its messages are the full conversation so far."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    turn: int
    agent: str
    messages: list[dict[str, str]]
    max_tokens: int

    def prompt_chars(self) -> int:
        """Characters of message content (a proxy for prompt length)."""
        return sum(len(m["content"]) for m in self.messages)


class Session(BaseModel):
    """A conversation: its arrival time and its turns, sent one after another."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    agent: str
    arrival_s: float
    think_s: float
    turns: list[TraceRequest]


class Trace(BaseModel):
    """The whole workload, reproducible from ``seed``."""

    seed: int
    sessions: list[Session]

    def requests(self) -> list[TraceRequest]:
        """Every request, session by session."""
        return [turn for session in self.sessions for turn in session.turns]

    def salted(self, tag: str) -> Trace:
        """The same trace with ``tag`` at the start of every prompt and session id.

        Replaying one trace through several routers against the same workers would let each run reuse
        the KV cache the previous runs left behind; a different tag per run makes every prompt new to
        the workers while keeping the trace's shape (lengths, sharing, timing) identical.
        """
        sessions = []
        for session in self.sessions:
            turns = []
            for turn in session.turns:
                first, *rest = turn.messages
                messages = [{**first, "content": f"[{tag}] {first['content']}"}, *rest]
                turns.append(
                    turn.model_copy(update={"messages": messages, "session_id": f"{tag}-{turn.session_id}"})
                )
            sessions.append(
                session.model_copy(update={"session_id": f"{tag}-{session.session_id}", "turns": turns})
            )
        return Trace(seed=self.seed, sessions=sessions)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def generate_trace(
    *,
    sessions: int = 12,
    turns: int = 4,
    agents: int = 3,
    rate_per_s: float = 2.0,
    system_words: int = 260,
    turn_words: int = 24,
    reply_words: int = 20,
    max_tokens: int = 12,
    max_prompt_chars: int = 5000,
    think_s: float = 0.05,
    seed: int = 0,
) -> Trace:
    """A trace of ``sessions`` conversations over ``agents`` agent types, arrivals Poisson at ``rate_per_s``.

    Prompts never exceed ``max_prompt_chars``: when a conversation would, its oldest turns are dropped
    (as agents truncate history), so every prompt fits the model's context.
    """
    rng = random.Random(seed)
    prefixes = {
        f"agent-{a}": (
            f"You are agent {a}. {_text(rng, system_words)}",
            "Tools: " + "; ".join(f"tool_{a}_{t}({_text(rng, 6)})" for t in range(6)),
        )
        for a in range(agents)
    }
    clock = 0.0
    out: list[Session] = []
    for s in range(sessions):
        clock += rng.expovariate(rate_per_s)
        agent = f"agent-{rng.randrange(agents)}"
        system, tools = prefixes[agent]
        history: list[dict[str, str]] = []
        requests: list[TraceRequest] = []
        for t in range(turns):
            history.append({"role": "user", "content": f"Turn {t}: {_text(rng, turn_words)}"})
            messages = [{"role": "system", "content": f"{system}\n{tools}"}, *history]
            while sum(len(m["content"]) for m in messages) > max_prompt_chars and len(messages) > 2:
                del messages[1]
            requests.append(
                TraceRequest(
                    session_id=f"s{s}", turn=t, agent=agent, messages=messages, max_tokens=max_tokens
                )
            )
            history.append({"role": "assistant", "content": _text(rng, reply_words)})
        out.append(Session(session_id=f"s{s}", agent=agent, arrival_s=clock, think_s=think_s, turns=requests))
    return Trace(seed=seed, sessions=out)


class RequestResult(BaseModel):
    """What the replay client measured for one request."""

    session_id: str
    turn: int
    status: int
    ttft_s: float | None = None
    e2e_s: float
    completion_tokens: int = 0
    error: str | None = None
    routing: str | None = None


class Summary(BaseModel):
    """Percentiles and rates of one replay."""

    requests: int
    errors: int
    ttft_p50_ms: float
    ttft_p90_ms: float
    ttft_p99_ms: float
    e2e_p50_ms: float
    req_per_s: float
    tokens_per_s: float
    wall_s: float = Field(ge=0)


async def _send(
    http: aiohttp.ClientSession, url: str, model: str, request: TraceRequest, headers: dict[str, str]
) -> RequestResult:
    body = {
        "model": model,
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    try:
        async with http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as response:
            routing = response.headers.get("x-grove-route")
            if response.status != 200:
                text = (await response.text())[:200]
                return RequestResult(
                    session_id=request.session_id,
                    turn=request.turn,
                    status=response.status,
                    e2e_s=time.perf_counter() - start,
                    error=text,
                    routing=routing,
                )
            async for raw in response.content:
                line = raw.decode().strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[5:])
                if ttft is None and any(
                    (c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()
                ):
                    ttft = time.perf_counter() - start
                if chunk.get("usage"):
                    tokens = int(chunk["usage"].get("completion_tokens") or 0)
            return RequestResult(
                session_id=request.session_id,
                turn=request.turn,
                status=200,
                ttft_s=ttft,
                e2e_s=time.perf_counter() - start,
                completion_tokens=tokens,
                routing=routing,
            )
    except (TimeoutError, aiohttp.ClientError) as exc:
        return RequestResult(
            session_id=request.session_id,
            turn=request.turn,
            status=0,
            e2e_s=time.perf_counter() - start,
            error=f"{type(exc).__name__}: {exc}",
        )


async def replay(trace: Trace, url: str, model: str, *, timeout_s: float = 120.0) -> list[RequestResult]:
    """Send the trace to an OpenAI-compatible ``url``; sessions start at their arrival times.

    Each request carries ``x-session-id`` (and the OpenAI ``user`` field is left untouched), so a
    session-aware router can use it.
    """
    results: list[RequestResult] = []
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        start = time.perf_counter()

        async def run_session(session: Session) -> None:
            delay = session.arrival_s - (time.perf_counter() - start)
            if delay > 0:
                await asyncio.sleep(delay)
            for request in session.turns:
                headers = {"x-session-id": request.session_id}
                results.append(await _send(http, url, model, request, headers))
                await asyncio.sleep(session.think_s)

        await asyncio.gather(*(run_session(s) for s in trace.sessions))
    return results


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(results: Sequence[RequestResult], wall_s: float) -> Summary:
    """TTFT and end-to-end percentiles (ms), request and token rates, error count."""
    ok = [r for r in results if r.status == 200 and r.error is None]
    ttfts = sorted(r.ttft_s * 1000 for r in ok if r.ttft_s is not None)
    e2es = sorted(r.e2e_s * 1000 for r in ok)
    return Summary(
        requests=len(results),
        errors=len(results) - len(ok),
        ttft_p50_ms=_percentile(ttfts, 50),
        ttft_p90_ms=_percentile(ttfts, 90),
        ttft_p99_ms=_percentile(ttfts, 99),
        e2e_p50_ms=_percentile(e2es, 50),
        req_per_s=len(ok) / wall_s if wall_s > 0 else 0.0,
        tokens_per_s=sum(r.completion_tokens for r in ok) / wall_s if wall_s > 0 else 0.0,
        wall_s=wall_s,
    )
