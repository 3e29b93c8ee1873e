"""The prompt's token ids, as the worker will see them: the model's own tokenizer and chat template.

Precise cache lookups (``kv_index.py``) need the tokens vLLM will compute, so the router tokenizes
with the same files (``tokenizer`` = the model directory or hub name the workers load): a chat
request through its chat template with the generation prompt (vLLM renders, then tokenizes without
adding special tokens again), a text prompt with the tokenizer's special tokens (as vLLM's
completions do), a token-id prompt as it is. Anything the tokenizer cannot take gives None, and
the caller falls back to its estimate. Results are kept on the request, so a retry pays nothing.

Tokenizing is most of precise mode's cost on the request path (``tests/bench/precise_cost_bench.py``:
about 0.6 µs a token), so a fast tokenizer's Rust backend is called directly with
``encode_batch_fast``: the same ids as the tokenizer's ``__call__`` (which calls the same backend
with the same flags), without computing offsets or building a ``BatchEncoding`` (about 30% less).
"""

from __future__ import annotations

import logging
from typing import Any

from runtime.errors import RouterConfigError
from runtime.router.policies.request_view import RequestView

__all__ = ["PromptTokenizer"]

log = logging.getLogger("grove.router.tokens")

_MEMO = "prompt-tokens"


class PromptTokenizer:
    """Tokenizes requests with a Hugging Face tokenizer loaded once at startup."""

    def __init__(self, source: str, max_chars: int = 4 * 2**20) -> None:
        try:
            from transformers import AutoTokenizer

            self._tok: Any = AutoTokenizer.from_pretrained(source)
        except Exception as exc:  # noqa: BLE001 - any load failure is a configuration error
            raise RouterConfigError(f"cannot load the tokenizer {source!r}: {type(exc).__name__}") from None
        self.max_chars = max_chars
        backend = getattr(self._tok, "_tokenizer", None)
        self._backend: Any = backend if hasattr(backend, "encode_batch_fast") else None
        if self._backend is not None:  # as the tokenizer's __call__ sets them: whole prompts, no padding
            self._backend.no_truncation()
            self._backend.no_padding()

    def tokens(self, req: RequestView) -> list[int] | None:
        """The prompt's token ids, or None when they cannot be known."""
        if _MEMO in req.memo:
            cached: list[int] | None = req.memo[_MEMO]
            return cached
        req.memo[_MEMO] = out = self._tokens(req)
        return out

    def _tokens(self, req: RequestView) -> list[int] | None:
        body = req.body
        try:
            if req.endpoint == "chat":
                messages = body.get("messages")
                if not isinstance(messages, list) or len(req.prompt_text) > self.max_chars:
                    return None
                # rendered, then tokenized without special tokens: what apply_chat_template(tokenize=True) does
                text = self._tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                return self._encode(text, add_special_tokens=False) if isinstance(text, str) else None
            prompt = body.get("prompt")
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], list):
                prompt = prompt[0]  # batched token prompts: route by the first
            if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
                return list(prompt)
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str) or len(prompt) > self.max_chars:
                return None
            return self._encode(prompt, add_special_tokens=True)
        except Exception as exc:  # noqa: BLE001 - a prompt the tokenizer rejects is routed by estimate
            log.debug("tokenizer gave up on a prompt: %s", type(exc).__name__)
            return None

    def _encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        """``text``'s token ids, as the tokenizer's ``__call__`` gives them."""
        if self._backend is not None:
            ids: list[int] = self._backend.encode_batch_fast([text], add_special_tokens=add_special_tokens)[
                0
            ].ids
            return ids
        return [int(t) for t in self._tok(text, add_special_tokens=add_special_tokens)["input_ids"]]
