"""The bytes router processes send each other: batches of routed facts (``policies/routed_fact.py``).

A batch is ``magic, fingerprint`` then records, each ``length, role, at, lengths...`` followed by
the worker URL, the session digest, each block-hash list (with its block size) and the KV keys, the
hashes as signed 64-bit integers (in the machine's byte order: the processes share one machine).
Everything is bounded: a URL of at most :data:`MAX_URL` bytes, at most :data:`MAX_LISTS` hash lists
of at most :data:`MAX_KEYS` hashes each (a longer prompt's fact keeps its first ones: a peer then
knows a shorter prefix of it; counted as ``truncated``), so a message is at most
:data:`MAX_MESSAGE` bytes (66 KiB), and anything longer is refused.

The fingerprint is the processes' ``hash()`` of a fixed string: block hashes are Python's
``hash()`` of text, equal in two processes only when they share the hash seed
(``PYTHONHASHSEED``, which :func:`~runtime.router.server.serve_processes` gives them all), so a
batch from a process that hashes differently is refused whole (``foreign``) rather than learnt as
nonsense. Decoding trusts nothing: a batch that does not parse is refused (``malformed``).
"""

from __future__ import annotations

import math
import struct
from array import array
from dataclasses import dataclass

from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.workers import PoolRole

__all__ = ["MAX_KEYS", "MAX_LISTS", "MAX_MESSAGE", "Decoded", "FactWriter", "decode_batch", "fingerprint"]

ROLES: tuple[PoolRole, ...] = ("prefill", "decode", "worker")
_ROLE_INDEX = {role: i for i, role in enumerate(ROLES)}
MAGIC = b"GRF1"
MAX_URL = 2048
MAX_KEYS = 2048  # hashes per list: 512k characters at 256 per block, 32k tokens at 16 per KV block
MAX_LISTS = 3  # block-hash lists per record (the policy's block size, the decider's, one to spare)
MAX_BATCH = 60 * 1024  # bytes; a batch is closed before it would grow past this
_SESSION = 16
_BATCH = struct.Struct("<4sq")  # magic, fingerprint
_HEAD = struct.Struct("<IBdHBIIBH")  # record length, role, at, url, session, prompt chars, cached, lists, kv
_LIST = struct.Struct("<IH")  # block chars, count
_U32 = 2**32 - 1
MAX_RECORD = _HEAD.size + MAX_URL + _SESSION + MAX_LISTS * (_LIST.size + 8 * MAX_KEYS) + 8 * MAX_KEYS
MAX_MESSAGE = _BATCH.size + max(MAX_BATCH, MAX_RECORD)
"""The largest batch a process sends (a record too big for a shared batch goes alone): the size to read."""


def fingerprint() -> int:
    """This process's ``hash()`` of a fixed string: equal in processes that hash text alike."""
    return hash("grove-router-peer-facts")


def _encode(role: PoolRole, fact: RoutedFact) -> tuple[bytes, bool]:
    """One record, and whether a hash list had to be cut to :data:`MAX_KEYS`."""
    url = fact.url.encode()[:MAX_URL]
    session = fact.session or b""
    lists = list(fact.blocks.items())
    truncated = (
        len(lists) > MAX_LISTS or len(fact.kv_keys) > MAX_KEYS or any(len(b) > MAX_KEYS for _, b in lists)
    )
    lists = lists[:MAX_LISTS]
    parts = [b"", url, session]
    for block_chars, blocks in lists:
        kept = blocks[:MAX_KEYS]
        parts.append(_LIST.pack(min(block_chars, _U32), len(kept)))
        parts.append(array("q", kept).tobytes())
    kv = fact.kv_keys[:MAX_KEYS]
    parts.append(array("q", kv).tobytes())
    body_len = sum(map(len, parts)) + _HEAD.size
    parts[0] = _HEAD.pack(
        body_len,
        _ROLE_INDEX[role],
        fact.at,
        len(url),
        len(session),
        min(fact.prompt_chars, _U32),
        min(fact.cached_chars, _U32),
        len(lists),
        len(kv),
    )
    return b"".join(parts), truncated


class FactWriter:
    """Collects records into batches of at most :data:`MAX_BATCH` bytes (a bigger record: one batch of its own)."""

    def __init__(self) -> None:
        self._head = _BATCH.pack(MAGIC, fingerprint())
        self._batches: list[bytearray] = []
        self.facts = 0  # records in the open batches
        self.truncated = 0

    def add(self, role: PoolRole, fact: RoutedFact) -> None:
        """Append ``fact`` (of a ``role`` pool) to the last batch, or to a new one when it is full."""
        record, cut = _encode(role, fact)
        self.truncated += cut
        if not self._batches or len(self._batches[-1]) + len(record) > MAX_BATCH:
            self._batches.append(bytearray(self._head))
        self._batches[-1] += record
        self.facts += 1

    def take(self) -> list[bytes]:
        """The batches written so far; the writer is empty again."""
        batches, self._batches = [bytes(b) for b in self._batches], []
        self.facts = 0
        return batches


@dataclass
class Decoded:
    """What one batch held: its facts, in order, with their pools; ``error``: why the rest was refused."""

    facts: list[tuple[PoolRole, RoutedFact]]
    error: str | None = None


def decode_batch(data: bytes | memoryview, expected: int) -> Decoded:
    """The facts of one batch; a batch from a process with another ``fingerprint`` is refused whole."""
    if not _BATCH.size <= len(data) <= MAX_MESSAGE:
        return Decoded([], "malformed")
    magic, found = _BATCH.unpack_from(data)
    if magic != MAGIC:
        return Decoded([], "malformed")
    if found != expected:
        return Decoded([], "foreign")
    out: list[tuple[PoolRole, RoutedFact]] = []
    view, at = memoryview(data), _BATCH.size
    while at < len(data):
        try:
            role, fact, at = _decode_record(view, at)
        except (struct.error, ValueError, UnicodeDecodeError, IndexError):
            return Decoded(out, "malformed")
        out.append((role, fact))
    return Decoded(out)


def _decode_record(view: memoryview, at: int) -> tuple[PoolRole, RoutedFact, int]:
    length, role, stamp, url_len, session_len, prompt, cached, lists, kv = _HEAD.unpack_from(view, at)
    end = at + length
    if end > len(view) or length < _HEAD.size or role >= len(ROLES) or not math.isfinite(stamp):
        raise ValueError("bad record head")
    if url_len > MAX_URL or session_len not in (0, _SESSION) or kv > MAX_KEYS or lists > MAX_LISTS:
        raise ValueError("bad record lengths")
    pos = at + _HEAD.size
    url = bytes(view[pos : pos + url_len]).decode("utf-8", "replace")  # a cut URL: an unknown worker
    pos += url_len
    session = bytes(view[pos : pos + session_len]) if session_len else None
    pos += session_len
    blocks: dict[int, list[int]] = {}
    for _ in range(lists):
        block_chars, count = _LIST.unpack_from(view, pos)
        pos += _LIST.size
        if count > MAX_KEYS or block_chars < 1:
            raise ValueError("bad block list")
        blocks[block_chars] = _ints(view, pos, count, end)
        pos += 8 * count
    kv_keys = _ints(view, pos, kv, end)
    if pos + 8 * kv != end:
        raise ValueError("record length does not match its contents")
    fact = RoutedFact(url, stamp, session, prompt, cached, blocks, kv_keys)
    return ROLES[role], fact, end


def _ints(view: memoryview, pos: int, count: int, end: int) -> list[int]:
    if pos + 8 * count > end:
        raise ValueError("list beyond its record")
    values = array("q")
    values.frombytes(view[pos : pos + 8 * count])
    return values.tolist()
