"""Chained hashes of a prompt's full character blocks: the router's estimate of what an engine caches.

An engine caches only full KV blocks, and a block's entry is only reusable when everything before it
matches, so each hash covers the whole prefix up to the end of its block. The prefix scorer, its index
and the prefill/decode decider compare these; :meth:`RequestView.blocks` computes them once per request.
The token prefix cache (``token_prefix_cache.py``) finds earlier prompts by the same hashes of their bytes.
"""

from __future__ import annotations

__all__ = ["text_block_hashes"]


def text_block_hashes(text: str | bytes, block_chars: int) -> list[int]:
    """Hashes of ``text``'s full ``block_chars``-character (or byte) blocks, each chained to the one before (block i covers 0..i)."""
    hashes: list[int] = []
    prev = 0
    for start in range(0, len(text) - block_chars + 1, block_chars):
        prev = hash((prev, text[start : start + block_chars]))
        hashes.append(prev)
    return hashes
