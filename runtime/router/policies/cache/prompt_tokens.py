"""The prompt's token ids, as the worker will see them: the model's own tokenizer and chat template.

Precise cache lookups (``kv_index.py``) need the tokens vLLM will compute, so the router tokenizes
with the same files (``tokenizer`` = the model directory or hub name the workers load; a directory
with ``tokenizer.json`` is read by ``tokenizer_files.py`` without transformers): a chat
request through its chat template with the generation prompt (vLLM renders, then tokenizes without
adding special tokens again), its messages and tools first normalized as vLLM normalizes them
(``vllm_chat.py``: tool schemas, tool calls and results, text parts), a text prompt with the
tokenizer's special tokens unless it says ``add_special_tokens: false`` (as vLLM's completions do),
a token-id prompt as it is. Anything the
tokenizer cannot take gives None, and the caller falls back to its estimate; so does a chat whose
normalization is not mirrored (images, legacy functions, a request's own template, ...), rather
than be looked up by tokens the worker never saw. Results are kept on the request, so a retry pays
nothing.

Tokenizing is most of precise mode's cost on the request path (``tests/bench/precise_cost_bench.py``:
about 0.6 µs a token), so a fast tokenizer's Rust backend is called directly with
``encode_batch_fast``: the same ids as the tokenizer's ``__call__`` (which calls the same backend
with the same flags), without computing offsets or building a ``BatchEncoding`` (about 30% less).
And a prompt that extends a recent one (an agent's next turn, a fan-out sibling) reuses that one's
tokens up to a safe seam and tokenizes only the rest (``token_prefix_cache.py``), for byte-level BPE
tokenizers that pass a check on probe texts at startup; others tokenize every prompt whole.
"""

from __future__ import annotations

import logging
from typing import Any

from runtime.errors import RouterConfigError
from runtime.router.policies.cache.chat_template import ChatTemplate
from runtime.router.policies.cache.token_prefix_cache import TokenPrefixCache, byte_lengths
from runtime.router.policies.cache.tokenizer_files import load_local
from runtime.router.policies.cache.vllm_chat import generation_prompt, template_messages, template_tools
from runtime.router.policies.request_view import RequestView

__all__ = ["PromptTokenizer"]

log = logging.getLogger("grove.router.tokens")

_MEMO = "prompt-tokens"

_PROBE_PARTS = (
    "The router reads the prompt once.",
    " Numbers 12345 and 3.14159, a URL https://example.com/a?b=c&d=e,",
    "\n\n## A heading\n- a list item\n\t- indented\ttabs",
    "   runs   of    spaces  ",
    " naïve café, 東京の天気, emoji 🚀✨, ligature ﬁ",
    "'quoted' \"double\" (parens) [brackets] {braces} <angle>",
    "\r\nwindows line\r\n",
    " camelCaseWords snake_case_words kebab-case-words",
)


def _probe_texts(specials: list[str]) -> list[str]:
    """Mixed texts (words, digits, whitespace runs, unicode, the tokenizer's own special tokens) to check seams on."""
    texts = []
    for shift in range(3):
        parts = []
        for i in range(160):
            parts.append(_PROBE_PARTS[(i * (shift + 2) + shift) % len(_PROBE_PARTS)])
            if specials and i % 11 == shift:
                parts.append(specials[i % len(specials)] + "\n")
        texts.append("".join(parts))
    return texts


def _transformers(source: str) -> Any:
    """The tokenizer as transformers loads it (a hub name, or a directory ``tokenizer_files.py`` cannot take)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


_COMPLETION_UNMIRRORED = ("suffix", "prompt_embeds", "truncate_prompt_tokens", "cache_salt")
"""Completion fields that change the prompt's tokens (a FIM rendering, embeddings, truncation) or the
worker's block hashes (a salt): such a prompt is routed by estimate."""


class PromptTokenizer:
    """Tokenizes requests with a Hugging Face tokenizer loaded once at startup.

    A model directory with ``tokenizer.json`` is loaded with ``tokenizers`` alone
    (``tokenizer_files.py``); anything else through transformers, when it is installed.
    """

    def __init__(self, source: str, max_chars: int = 4 * 2**20) -> None:
        self._tok: Any = None
        self._template: ChatTemplate | None = None
        self._tool_template: ChatTemplate | None = None
        #: Templates transformers picks, by source, for what vLLM reads from them (transformers path).
        self._seen_templates: dict[str, ChatTemplate] = {}
        try:
            local = load_local(source)
            if local is not None:
                backend, self._template, self._tool_template = (
                    local.backend,
                    local.template,
                    local.tool_template,
                )
            else:
                self._tok = _transformers(source)
                backend = getattr(self._tok, "_tokenizer", None)
        except Exception as exc:  # noqa: BLE001 - any load failure is a configuration error
            raise RouterConfigError(f"cannot load the tokenizer {source!r}: {type(exc).__name__}") from None
        self.max_chars = max_chars
        self._backend: Any = backend if hasattr(backend, "encode_batch_fast") else None
        if self._backend is not None:  # as the tokenizer's __call__ sets them: whole prompts, no padding
            self._backend.no_truncation()
            self._backend.no_padding()
        #: Recent prompts' tokens by text prefix (None: this tokenizer's prompts are tokenized whole).
        self.prefixes: TokenPrefixCache | None = None
        # the prefix cache tokenizes plain text: a prompt tokenized with special tokens may use it
        # only when this tokenizer adds none
        self._adds_none = False
        if self._backend is not None:
            with_specials = self._backend.encode_batch_fast(["a"], add_special_tokens=True)[0].ids
            self._adds_none = with_specials == self._plain("a")
            self.prefixes = self._prefix_cache()

    def _plain(self, text: str) -> list[int]:
        ids: list[int] = self._backend.encode_batch_fast([text], add_special_tokens=False)[0].ids
        return ids

    def _prefix_cache(self) -> TokenPrefixCache | None:
        """A prefix cache, if seams are exact for this tokenizer on the probe texts (else None: whole prompts)."""
        table = byte_lengths(self._backend)
        if table is None:
            return None
        specials = [str(t.content) for t in self._backend.get_added_tokens_decoder().values()]
        cache = TokenPrefixCache(self._plain, table)
        for text in _probe_texts(specials):
            ids = self._plain(text)
            if sum(table[t] for t in ids) != len(text.encode()):
                log.info("tokenizer is not byte-level exact: every prompt is tokenized whole")
                return None
            for end in range(len(text) // 4, len(text) + 1, len(text) // 9):
                if cache.tokens(text[:end]) != self._plain(text[:end]):
                    log.info("tokenizer seams are not exact on a probe: every prompt is tokenized whole")
                    return None
        if not cache.hits:
            return None
        return TokenPrefixCache(self._plain, table)

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
                if len(req.prompt_text) > self.max_chars:
                    return None
                # rendered, then tokenized without special tokens: what apply_chat_template(tokenize=True) does
                text = self._render(body)
                if not isinstance(text, str) or len(text) > self.max_chars:
                    return None
                return self._encode(text, add_special_tokens=False)
            if any(body.get(field) is not None for field in _COMPLETION_UNMIRRORED):
                return None
            add_special_tokens = body.get("add_special_tokens", True)
            if not isinstance(add_special_tokens, bool):
                return None
            prompt = body.get("prompt")
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], list):
                prompt = prompt[0]  # batched token prompts: route by the first
            if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
                return list(prompt)
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str) or len(prompt) > self.max_chars:
                return None
            return self._encode(prompt, add_special_tokens=add_special_tokens)
        except Exception as exc:  # noqa: BLE001 - a prompt the tokenizer rejects is routed by estimate
            log.debug("tokenizer gave up on a prompt: %s", type(exc).__name__)
            return None

    def _render(self, body: dict[str, Any]) -> Any:
        """The chat's prompt text, normalized as vLLM does (a chat it does not mirror, or a template's refusal, raises)."""
        add_generation_prompt = generation_prompt(body)
        tools = template_tools(body)
        template = self._chat_template(tools)
        messages = template_messages(
            body.get("messages"), template.content_format, supports_developer=template.supports_developer
        )
        if self._tok is None:
            return template.render(messages, add_generation_prompt=add_generation_prompt, tools=tools)
        return self._tok.apply_chat_template(
            messages, tools=tools, add_generation_prompt=add_generation_prompt, tokenize=False
        )

    def _chat_template(self, tools: list[Any] | None) -> ChatTemplate:
        """The template transformers renders this chat with (a request with tools may get another one)."""
        if self._tok is None:
            template = self._template if tools is None else self._tool_template
            if template is None:
                raise ValueError("the tokenizer has no chat template")
            return template
        source = self._tok.get_chat_template(None, tools=tools)
        if source not in self._seen_templates:
            self._seen_templates[source] = ChatTemplate(source, {})
        return self._seen_templates[source]

    def _encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        """``text``'s token ids, as the tokenizer's ``__call__`` gives them."""
        if self.prefixes is not None and (not add_special_tokens or self._adds_none):
            return self.prefixes.tokens(text)
        if self._backend is not None:
            encoded = self._backend.encode_batch_fast([text], add_special_tokens=add_special_tokens)
            ids: list[int] = encoded[0].ids
            return ids
        return [int(t) for t in self._tok(text, add_special_tokens=add_special_tokens)["input_ids"]]
