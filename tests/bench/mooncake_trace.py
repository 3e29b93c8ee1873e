"""Replays of public production traces in the Mooncake format, turned into prompts a small model serves.

A Mooncake trace (kvcache-ai/Mooncake ``FAST25-release/traces``: ``synthetic_trace.jsonl``,
``conversation_trace.jsonl``, ``toolagent_trace.jsonl``; a copy of the first lives in
``../shared/data``) is one JSON object a line: ``timestamp`` (ms), ``input_length`` and
``output_length`` (tokens) and ``hash_ids``, the ids of the prompt's 512-token prefix blocks: equal
ids at the same position mean a shared, cacheable prefix. It carries no text, so a replay
(:func:`mooncake_to_trace`):

* takes a *window* of it (``start_ms`` and ``duration_ms``, at most ``max_requests``), optionally
  a *sample of its conversations* (``sample_every`` n: the requests whose first hash id, the root a
  conversation shares, is a multiple of n), which keeps the trace's reuse (its turns come back
  minutes apart, so a short window has little) at a fraction of the requests;
* turns each hash id into a fixed block of text (same id, same text: a deterministic word salad
  seeded by the id), ``block_chars`` characters for the trace's 512 tokens (the block-to-text
  scale), the last block cut to the scaled remainder of ``input_length``, so lengths scale too;
* keeps at most ``max_blocks`` leading blocks (the model's context; the prefix sharing stays);
* compresses time by ``time_compression`` (arrival = timestamp / compression) and caps the output at
  ``max_tokens``;
* names each request's session by its first hash id (a conversation shares its root block), which is
  what a session-keyed router (vllm-router's ``consistent_hash``, our ``x-session-id``) can use.

The result is an ordinary :class:`~tests.bench.agentic_trace.Trace` of one-turn sessions, so the
same streaming replay client and summary serve both traces.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tests.bench.agentic_trace import WORDS, Session, Trace, TraceRequest

__all__ = [
    "MooncakeRecord",
    "MooncakeReplay",
    "block_text",
    "load_mooncake",
    "mooncake_to_trace",
    "prompt_of",
]

TRACE_BLOCK_TOKENS = 512
"""Tokens per hash id in the Mooncake traces."""


class MooncakeRecord(BaseModel):
    """One request of a Mooncake-format trace."""

    model_config = ConfigDict(frozen=True)

    timestamp: int = Field(ge=0)
    input_length: int = Field(ge=0)
    output_length: int = Field(ge=0)
    hash_ids: list[int]


class MooncakeReplay(BaseModel):
    """How a window of a trace becomes prompts and arrival times."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start_ms: int = Field(default=0, ge=0)
    duration_ms: int | None = Field(default=None, gt=0)
    max_requests: int | None = Field(default=None, gt=0)
    sample_every: int = Field(default=1, ge=1)
    time_compression: float = Field(default=1.0, gt=0)
    block_chars: int = Field(default=96, ge=8, description="characters of text per 512-token trace block")
    max_blocks: int = Field(default=16, ge=1)
    max_tokens: int = Field(default=16, ge=1)
    seed: int = 0


def load_mooncake(path: Path) -> list[MooncakeRecord]:
    """Every record of a Mooncake-format JSONL file, in file order (a bad line names its number)."""
    out = []
    with open(path) as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(MooncakeRecord.model_validate(json.loads(line)))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a Mooncake trace record: {exc}") from None
    return out


def block_text(hash_id: int, chars: int, seed: int = 0) -> str:
    """The text of one trace block: the same id (and seed) always gives the same ``chars`` characters."""
    rng = random.Random(hash_id * 1_000_003 + seed)
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]


def prompt_of(record: MooncakeRecord, replay: MooncakeReplay) -> str:
    """The record's prompt: one text block per hash id, the last cut to the scaled remainder."""
    ids = record.hash_ids[: replay.max_blocks]
    if not ids:
        return ""
    tail_tokens = record.input_length - TRACE_BLOCK_TOKENS * (len(record.hash_ids) - 1)
    tail = len(ids) == len(record.hash_ids) and 0 < tail_tokens < TRACE_BLOCK_TOKENS
    parts = [block_text(h, replay.block_chars, replay.seed) for h in ids]
    if tail:
        parts[-1] = parts[-1][: max(1, round(replay.block_chars * tail_tokens / TRACE_BLOCK_TOKENS))]
    return "".join(parts)


def window(records: list[MooncakeRecord], replay: MooncakeReplay) -> list[MooncakeRecord]:
    """The records inside the replay's time window, at most ``max_requests`` of them."""
    end = None if replay.duration_ms is None else replay.start_ms + replay.duration_ms
    chosen = [
        r
        for r in records
        if r.timestamp >= replay.start_ms
        and (end is None or r.timestamp < end)
        and (not r.hash_ids or r.hash_ids[0] % replay.sample_every == 0)
    ]
    return chosen[: replay.max_requests] if replay.max_requests else chosen


def mooncake_to_trace(records: list[MooncakeRecord], replay: MooncakeReplay) -> Trace:
    """A replayable :class:`Trace` of the window: one single-turn session per record."""
    chosen = window(records, replay)
    base = chosen[0].timestamp if chosen else 0
    sessions = []
    for i, record in enumerate(chosen):
        session_id = f"h{record.hash_ids[0]}" if record.hash_ids else f"r{i}"
        request = TraceRequest(
            session_id=session_id,
            turn=i,
            agent="mooncake",
            messages=[{"role": "user", "content": prompt_of(record, replay)}],
            max_tokens=max(1, min(replay.max_tokens, record.output_length or 1)),
        )
        arrival = (record.timestamp - base) / 1000 / replay.time_compression
        sessions.append(
            Session(session_id=session_id, agent="mooncake", arrival_s=arrival, think_s=0, turns=[request])
        )
    return Trace(seed=replay.seed, sessions=sessions)
