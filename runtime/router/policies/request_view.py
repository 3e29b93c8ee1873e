"""What a routing policy may read of a request: the body, the session, the prompt and its block hashes.

The prompt text and its hashes are computed only when a part asks, so a policy that never looks at
the prompt costs no parsing.
"""

from __future__ import annotations

from typing import Any, Literal

from runtime.router.policies.cache.block_hashes import text_block_hashes

__all__ = ["Endpoint", "RequestView"]

Endpoint = Literal["completions", "chat"]


class RequestView:
    """What policies may read of a request; derived values are computed once, on first use."""

    __slots__ = ("_blocks", "_text", "body", "endpoint", "explain", "memo", "model", "session")

    def __init__(
        self, endpoint: Endpoint, body: dict[str, Any], session: str | None = None, *, explain: bool = True
    ) -> None:
        self.endpoint = endpoint
        #: Whether anybody will read why the policy chose (the route header, a recorded span): when
        #: nobody will, the policy skips writing it (the choice itself is the same).
        self.explain = explain
        self.body = body
        self.model: str = body.get("model", "")
        user = body.get("user")
        #: The session key: the ``x-session-id`` header (given by the app), else the OpenAI ``user`` field.
        self.session: str | None = session or (user if isinstance(user, str) and user else None)
        self._text: str | None = None
        self._blocks: dict[int, list[int]] = {}
        #: Values parts derive from the request once (token ids, chain keys), shared by every part.
        self.memo: dict[str, Any] = {}

    @property
    def prompt_text(self) -> str:
        """The prompt as one string (chat messages rendered role by role); token-id prompts as digits."""
        if self._text is None:
            self._text = _render_prompt(self.endpoint, self.body)
        return self._text

    def blocks(self, block_chars: int) -> list[int]:
        """Chained hashes of the prompt's full ``block_chars``-character blocks (block i covers 0..i).

        Only full blocks count, as an engine caches only full KV blocks. A hash covers the whole
        prefix, so equal hashes at position i mean equal prompts up to the end of block i.
        """
        cached = self._blocks.get(block_chars)
        if cached is None:
            cached = self._blocks[block_chars] = text_block_hashes(self.prompt_text, block_chars)
        return cached

    def est_prompt_tokens(self, chars_per_token: float = 4.0) -> int:
        """Prompt length in tokens: exact for token-id prompts, else characters / ``chars_per_token``."""
        prompt = self.body.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
            return len(prompt)
        return int(len(self.prompt_text) / chars_per_token) + 1

    @property
    def max_tokens(self) -> int:
        """The requested output budget (vLLM's default 16 when absent)."""
        value = self.body.get("max_completion_tokens") or self.body.get("max_tokens")
        return value if isinstance(value, int) and value > 0 else 16


def _render_prompt(endpoint: Endpoint, body: dict[str, Any]) -> str:
    if endpoint == "chat":
        parts = []
        for msg in body.get("messages") or ():
            if not isinstance(msg, dict):
                continue
            content = msg.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                texts = (p.get("text") for p in content if isinstance(p, dict))
                content = "".join(t for t in texts if isinstance(t, str))
            parts.append(f"<|{msg.get('role', '')}|>\n{content or ''}\n")
        return "".join(parts)
    prompt = body.get("prompt", "")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        if isinstance(prompt[0], str):
            return prompt[0]  # batched prompts: route by the first
        if isinstance(prompt[0], int):
            return " ".join(map(str, prompt))
    return ""
