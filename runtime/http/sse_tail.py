"""The last bytes of a relayed OpenAI event stream: was it whole, and how to close it with an error event.

Both relays of vLLM streams (the router's, and the pipeline server's OpenAI pass-through) must tell
a worker that broke off mid-answer from one that closed its socket just after ``data: [DONE]``,
before the chunked terminator: the first ends with an error event and no terminator, so no client
takes a short answer for a whole one; the second ends cleanly, because the client has every byte.
"""

from __future__ import annotations

__all__ = ["DONE", "SseTail"]

DONE = b"data: [DONE]\n\n"
"""vLLM's last event of a stream."""


class SseTail:
    """Keeps a stream's last ``len(DONE)`` bytes as chunks pass by."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b"\n\n"  # nothing sent yet: no event to close

    def feed(self, chunk: bytes) -> None:
        """Note a chunk that went to the client."""
        size = len(DONE)
        self._tail = chunk[-size:] if len(chunk) >= size else (self._tail + chunk)[-size:]

    @property
    def done(self) -> bool:
        """Whether the stream so far ends with ``[DONE]``: the answer is whole."""
        return self._tail.endswith(DONE)

    def error_event(self, body: bytes) -> bytes:
        """The newlines the current event still lacks, then ``body`` (a JSON error document) as an event."""
        ends = 2 if self._tail.endswith(b"\n\n") else (1 if self._tail.endswith(b"\n") else 0)
        return b"\n\n"[: 2 - ends] + b"data: " + body + b"\n\n"
