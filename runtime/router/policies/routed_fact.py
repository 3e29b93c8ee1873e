"""What routing one request to one worker teaches a policy: the request reduced to what its parts learn from.

A policy learns from the requests it routes (a prefix index, session bindings, fan-out siblings, a
picker's turn). With several router processes each must learn from every process's requests, so
learning has two steps: where the request was routed, each part *notes* into a :class:`RoutedFact`
what it will learn (the prompt's block hashes, the session's digest, the KV keys now pending), and
then every process, the routing one and its peers, *learns* from that same fact
(``Part.note`` / ``Part.learn``). One definition of what is learned, whoever routed the request;
and the costly derivations (hashing, tokenizing) run once, where the request arrived.

``at`` is ``time.monotonic()`` where the request was routed: on Linux that clock is one for the
whole system, so a peer's stamps compare with its own (TTLs, the fan-out window).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from runtime.router.policies.request_view import RequestView

__all__ = ["RoutedFact", "session_digest"]


def session_digest(session: str) -> bytes:
    """The 16-byte digest a session key is kept (and sent) as: bounded, whatever the client sent."""
    return hashlib.blake2b(session.encode("utf-8", "replace"), digest_size=16).digest()


@dataclass(slots=True)
class RoutedFact:
    """One request routed to the worker at ``url``, at monotonic time ``at``, as the policies' parts noted it."""

    url: str
    at: float
    #: The session key's digest (:func:`session_digest`), or None when the request named no session.
    session: bytes | None = None
    #: Characters of the prompt, and how many of them the router's estimate held on the worker.
    prompt_chars: int = 0
    cached_chars: int = 0
    #: The prompt's chained block hashes, by block size in characters (one entry per size a part uses).
    blocks: dict[int, list[int]] = field(default_factory=dict)
    #: Precise mode: the prompt's KV chain keys, pending on the worker until its events arrive.
    kv_keys: list[int] = field(default_factory=list)

    def note_session(self, req: RequestView) -> None:
        """Note the request's session (its digest), if it named one."""
        if req.session is not None and self.session is None:
            self.session = session_digest(req.session)

    def note_blocks(self, req: RequestView, block_chars: int) -> list[int]:
        """Note the prompt's block hashes at ``block_chars`` (computed once per request) and return them."""
        blocks = self.blocks.get(block_chars)
        if blocks is None:
            blocks = self.blocks[block_chars] = req.blocks(block_chars)
        return blocks
