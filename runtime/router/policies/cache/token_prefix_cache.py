"""Token ids of recent prompts, found by text prefix: a prompt that extends one tokenizes only its new tail.

An agent's next turn is its last prompt plus a little; tokenizing all of it again is most of precise
mode's cost on long contexts (``tests/bench/precise_cost_bench.py``). Tokenization is not
prefix-stable at an arbitrary seam (a word cut in two tokenizes differently), so a prompt is split
only where the earlier tokenization itself has a token boundary before a space that follows a
non-space character: a pre-token boundary for byte-level BPE tokenizers (GPT-2, Llama 3, Qwen), where a
word never spans a space. Tokens before the seam are reused; the rest is tokenized afresh and must
repeat the earlier tokens for the stretch both prompts still share, or the whole prompt is tokenized
after all (counted in ``mismatches``).

Positions are bytes (UTF-8): a byte-level token is a fixed byte string, so a token's end is the sum
of its tokens' byte lengths (``token_bytes``). :func:`byte_lengths` builds that table only for
byte-level tokenizers without a normalizer, and the owner checks it on probe texts before use.
Entries are found by chained hashes of their 256-byte blocks; the cache keeps at most
``max_entries`` prompts and ``max_tokens`` tokens, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

from runtime.router.policies.cache.block_hashes import text_block_hashes

__all__ = ["TokenPrefixCache", "byte_lengths"]

Encode = Callable[[str], list[int]]

_SPACE = 0x20
_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")


def byte_lengths(backend: Any) -> list[int] | None:
    """Each token id's length in bytes for a byte-level BPE ``tokenizers.Tokenizer``; None for any other kind."""
    if type(backend.decoder).__name__ != "ByteLevel" or backend.normalizer is not None:
        return None
    size = backend.get_vocab_size(with_added_tokens=True)
    added = backend.get_added_tokens_decoder()
    table = [0] * size
    for token, token_id in backend.get_vocab(with_added_tokens=False).items():
        if 0 <= token_id < size:
            table[token_id] = len(token)  # one character of the byte-level alphabet per byte
    for token_id, token in added.items():
        if 0 <= token_id < size:
            table[token_id] = len(token.content.encode())
    return table


class _Entry:
    __slots__ = ("anchors", "data", "ends", "ids")

    def __init__(self, data: bytes, ids: list[int], anchors: list[int]) -> None:
        self.data = data
        self.ids = ids
        self.anchors = anchors
        self.ends: list[int] | None = None  # byte offset where each token ends, computed on first reuse


class TokenPrefixCache:
    """Tokenizes through ``encode``, reusing the tokens of the longest earlier prompt this one extends."""

    def __init__(
        self,
        encode: Encode,
        token_bytes: Sequence[int],
        *,
        block: int = 256,
        min_bytes: int = 1024,
        margin: int = 64,
        verify_tokens: int = 4,
        max_entries: int = 256,
        max_tokens: int = 1 << 19,
    ) -> None:
        self.encode = encode
        self.token_bytes = token_bytes
        self.block = block
        self.min_bytes = min_bytes
        self.margin = margin
        self.verify_tokens = verify_tokens
        self.max_entries = max_entries
        self.max_tokens = max_tokens
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._by_anchor: dict[int, _Entry] = {}
        self._tokens = 0
        self.hits = self.misses = self.mismatches = 0

    def clear(self) -> None:
        """Forget every prompt."""
        self._entries.clear()
        self._by_anchor.clear()
        self._tokens = 0

    def tokens(self, text: str) -> list[int]:
        """``encode(text)``, computed from a cached prefix's tokens when one fits."""
        data = text.encode()
        if len(data) < self.min_bytes:
            return self.encode(text)
        anchors = text_block_hashes(data, self.block)
        entry = self._extend(data, anchors)
        if entry is None:
            self.misses += 1
            entry = _Entry(data, self.encode(text), anchors)
        else:
            self.hits += 1
            if id(entry) in self._entries:  # the same prompt again (a retry, a repeated call)
                return entry.ids
        self._store(entry)
        return entry.ids

    def _extend(self, data: bytes, anchors: list[int]) -> _Entry | None:
        """``data``'s entry built on the best earlier one (that one itself for a repeat), or None.

        None: no earlier prompt shares a block, there is no safe seam, or the tail did not repeat the
        earlier tokens.
        """
        for depth in range(len(anchors) - 1, -1, -1):
            base = self._by_anchor.get(anchors[depth])
            if base is None:
                continue
            shared = (depth + 1) * self.block
            if base.data[:shared] != data[:shared]:  # a hash collision: never trust it
                return None
            self._entries.move_to_end(id(base))
            if len(base.data) == len(data) and base.data == data:
                return base
            return self._reuse(data, anchors, base, shared)
        return None

    def _reuse(self, data: bytes, anchors: list[int], base: _Entry, shared: int) -> _Entry | None:
        table = self.token_bytes
        if base.ends is None:  # once per entry tokenized whole; an extension's ends are built from its base's
            base.ends = list(accumulate(map(table.__getitem__, base.ids)))
        ends = base.ends
        seam_index = _seam(base.data, ends, shared - self.margin)
        if seam_index is None:
            return None
        seam = ends[seam_index - 1]
        tail = self.encode(data[seam:].decode())
        # the tokens the old prompt had over the stretch both share (up to a lookahead) must come out again
        stop = seam_index
        while stop < len(ends) and ends[stop] <= shared - 16:
            stop += 1
        if stop - seam_index < self.verify_tokens or tail[: stop - seam_index] != base.ids[seam_index:stop]:
            self.mismatches += 1
            return None
        entry = _Entry(data, base.ids[:seam_index] + tail, anchors)
        entry.ends = ends[:seam_index] + [seam + n for n in accumulate(map(table.__getitem__, tail))]
        return entry

    def _store(self, entry: _Entry) -> None:
        if len(entry.ids) > self.max_tokens:
            return
        self._entries[id(entry)] = entry
        self._tokens += len(entry.ids)
        for anchor in entry.anchors:
            self._by_anchor[anchor] = entry
        while len(self._entries) > self.max_entries or self._tokens > self.max_tokens:
            _, old = self._entries.popitem(last=False)
            self._tokens -= len(old.ids)
            for anchor in old.anchors:
                if self._by_anchor.get(anchor) is old:
                    del self._by_anchor[anchor]


def _seam(data: bytes, ends: list[int], limit: int, look_back: int = 64) -> int | None:
    """The count of leading tokens to reuse: they end at a space that follows a non-space, at or before ``limit``."""
    lo, hi = 0, len(ends)
    while lo < hi:  # the first token ending after limit
        mid = (lo + hi) // 2
        if ends[mid] <= limit:
            lo = mid + 1
        else:
            hi = mid
    for count in range(lo, max(0, lo - look_back), -1):
        end = ends[count - 1]
        if 0 < end < len(data) and data[end] == _SPACE and data[end - 1] not in _WHITESPACE:
            return count
    return None
