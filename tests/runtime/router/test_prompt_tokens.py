"""Precise mode's prompt tokens and block keys are exactly what the model's own tokenizer gives.

The router tokenizes prompts its own (faster) way (``cache/prompt_tokens.py``); the references here
are the Hugging Face tokenizer called the ordinary way: ``apply_chat_template(tokenize=True)`` for
chats (what vLLM's chat endpoint computes: rendered, then tokenized without special tokens again)
and ``tokenizer(prompt)`` for completions. The whole precise view is then checked against a worker
index filled with the blocks a worker would report for the reference tokens.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime.router.kv_events import BlockStored, KvEventBatch
from runtime.router.policies import RequestView
from runtime.router.policies.cache.kv_index import chain_keys
from runtime.router.policies.cache.precise_cache import PreciseCache
from runtime.router.policies.cache.prompt_tokens import PromptTokenizer
from runtime.router.workers import Worker
from tests.bench.mooncake_trace import block_text

pytestmark = pytest.mark.timeout(120)

BLOCK = 4
URL = "http://w0"

TEXTS = [
    "",
    "a",
    " leading space and trailing   ",
    "tabs\tand\nnew\n\nlines\r\n and    runs of      spaces",
    "unicode: naïve café — 東京 🚀 ﬁ ligature, zero\u200bwidth",
    "special token text inside content: <|user|> <|end|><|assistant|> <|bos|>",
    "digits 1234567890 and punctuation!!! ... ??? (x) [y] {z} 'quoted' \"double\"",
    block_text(1, 3000),
    block_text(2, 91) + block_text(3, 91) + block_text(4, 45),  # a Mooncake-style prompt
]


@pytest.fixture(scope="module")
def tok(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


@pytest.fixture(scope="module")
def tokens(tiny_model: Path) -> PromptTokenizer:
    return PromptTokenizer(str(tiny_model))


def _chat_reference(tok: Any, messages: list[dict[str, Any]]) -> list[int]:
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(t) for t in ids]


@pytest.mark.parametrize("text", TEXTS)
def test_chat_tokens_are_the_chat_templates_own(text: str, tokens: PromptTokenizer, tok: Any) -> None:
    messages = [
        {"role": "system", "content": "you are terse"},
        {"role": "user", "content": text},
        {"role": "assistant", "content": text[::-1]},
        {"role": "user", "content": text + " again?"},
    ]
    got = tokens.tokens(RequestView("chat", {"model": "m", "messages": messages}))
    assert got == _chat_reference(tok, messages)


@pytest.mark.parametrize("text", TEXTS)
def test_completion_tokens_are_the_tokenizers_own(text: str, tokens: PromptTokenizer, tok: Any) -> None:
    reference = [int(t) for t in tok(text)["input_ids"]]
    assert tokens.tokens(RequestView("completions", {"model": "m", "prompt": text})) == reference
    assert tokens.tokens(RequestView("completions", {"model": "m", "prompt": [text, "other"]})) == reference


def test_token_prompts_pass_through_and_unusable_ones_give_none(tokens: PromptTokenizer) -> None:
    assert tokens.tokens(RequestView("completions", {"prompt": [5, 6, 7]})) == [5, 6, 7]
    assert tokens.tokens(RequestView("completions", {"prompt": [[8, 9], [1]]})) == [8, 9]
    assert tokens.tokens(RequestView("completions", {"prompt": {"not": "a prompt"}})) is None
    assert tokens.tokens(RequestView("chat", {"messages": "not a list"})) is None


@pytest.mark.parametrize(
    "field",
    [{"suffix": " end"}, {"prompt_embeds": "AAAA"}, {"truncate_prompt_tokens": 4}, {"cache_salt": "s" * 16}],
)
def test_completions_whose_tokens_or_block_hashes_vllm_changes_are_left_to_the_estimate(
    field: dict[str, Any], tokens: PromptTokenizer
) -> None:
    """A FIM suffix, embeddings and truncation change the tokens; a salt changes the worker's block hashes."""
    body = {"model": "m", "prompt": "plain words"}
    assert tokens.tokens(RequestView("completions", body)) is not None
    assert tokens.tokens(RequestView("completions", {**body, **field})) is None


def test_a_completion_without_special_tokens_is_tokenized_without_them(
    tiny_model: Path, tmp_path: Path
) -> None:
    """On a tokenizer that adds a BOS (its post-processor), as the tokenizer's own call gives them."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_file(str(tiny_model / "tokenizer.json"))
    backend.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", special_tokens=[("<|bos|>", backend.token_to_id("<|bos|>"))]
    )
    folder = tmp_path / "bos"
    PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|bos|>").save_pretrained(str(folder))
    tok = PreTrainedTokenizerFast.from_pretrained(str(folder))
    ours = PromptTokenizer(str(folder))
    text = "plain words"
    with_bos = ours.tokens(RequestView("completions", {"prompt": text}))
    without = ours.tokens(RequestView("completions", {"prompt": text, "add_special_tokens": False}))
    assert with_bos == [int(t) for t in tok(text)["input_ids"]]
    assert without == [int(t) for t in tok(text, add_special_tokens=False)["input_ids"]] != with_bos


def _stored(tokens: list[int]) -> KvEventBatch:
    """What a worker reports after caching these tokens' full blocks (hashes are the worker's own names)."""
    full = len(tokens) // BLOCK * BLOCK
    hashes: list[int | bytes] = [1000 + i for i in range(full // BLOCK)]
    return KvEventBatch(
        ts=0.0,
        events=[BlockStored(block_hashes=hashes, token_ids=tokens[:full], block_size=BLOCK, medium="GPU")],
    )


def test_the_precise_view_of_a_prompt_counts_the_blocks_a_worker_reported_for_its_reference_tokens(
    tiny_model: Path, tok: Any
) -> None:
    async def run() -> None:
        cache = PreciseCache(
            PromptTokenizer(str(tiny_model)), endpoints={URL: "ipc:///nonexistent/grove-test"}
        )
        await cache.start([URL])
        try:
            for text in TEXTS[1:]:
                messages = [{"role": "user", "content": text}]
                reference = _chat_reference(tok, messages)
                cache.index.clear(URL)
                cache.apply(URL, _stored(reference))
                req = RequestView("chat", {"model": "m", "messages": messages})
                found = cache.keys(URL, req)
                assert found == (chain_keys(reference, BLOCK), len(reference), BLOCK)
                view = cache.view(Worker(URL, "worker"), req)
                assert view is not None
                usable = (len(reference) - 1) // BLOCK  # vLLM recomputes the last prompt token
                assert (view.prompt_tokens, view.blocks, view.held, view.pending) == (
                    len(reference),
                    usable,
                    usable,
                    0,
                )
        finally:
            await cache.close()

    asyncio.run(run())


def test_an_agents_next_turns_reuse_the_last_turns_tokens_and_equal_the_chat_templates_own(
    tiny_model: Path, tok: Any
) -> None:
    tokens = PromptTokenizer(str(tiny_model))
    assert tokens.prefixes is not None  # a byte-level BPE tokenizer: seams are used
    messages: list[dict[str, Any]] = [{"role": "system", "content": block_text(7, 2000)}]
    for turn in range(6):
        messages = [
            *messages,
            {"role": "user", "content": block_text(100 + turn, 300 + 97 * turn) + f"\n\nturn {turn}?"},
        ]
        got = tokens.tokens(RequestView("chat", {"model": "m", "messages": messages}))
        assert got == _chat_reference(tok, messages), turn
        messages.append({"role": "assistant", "content": block_text(200 + turn, 180) + "  ok.\n"})
    assert tokens.prefixes.hits >= 5 and tokens.prefixes.mismatches == 0
