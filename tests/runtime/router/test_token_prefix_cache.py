"""The prefix cache of token ids gives exactly the tokenizer's own ids for prompts that extend, branch from
or repeat earlier ones; the reference is the same tokenizer encoding each whole prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.router.policies.cache.token_prefix_cache import TokenPrefixCache, byte_lengths
from tests.bench.mooncake_trace import block_text

pytestmark = pytest.mark.timeout(300)

PIECES = [
    " the",
    " router",
    "  ",
    "\n",
    "\n\n",
    "\t",
    ".",
    ",",
    "!!",
    " 42",
    "12345",
    " naïve",
    " 東京",
    "🚀",
    "<|end|>",
    "<|user|>\n",
    "word",
    "-",
    "'s",
    " café",
    "x",
]


@pytest.fixture(scope="module")
def backend(tiny_model: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tiny_model / "tokenizer.json"))


def _encode(backend: Any) -> Any:
    def encode(text: str) -> list[int]:
        ids: list[int] = backend.encode(text, add_special_tokens=False).ids
        return ids

    return encode


def test_the_byte_table_sums_to_the_texts_bytes_and_refuses_other_tokenizer_kinds(backend: Any) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    table = byte_lengths(backend)
    assert table is not None
    text = "".join(PIECES) * 20
    assert sum(table[t] for t in _encode(backend)(text)) == len(text.encode())
    word_level = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    assert byte_lengths(word_level) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    base=st.lists(st.sampled_from(PIECES), min_size=300, max_size=900),
    turns=st.lists(
        st.tuples(st.floats(min_value=0.3, max_value=1.0), st.lists(st.sampled_from(PIECES), max_size=120)),
        min_size=1,
        max_size=5,
    ),
)
def test_prompts_that_extend_or_branch_from_earlier_ones_get_the_tokenizers_own_ids(
    backend: Any, base: list[str], turns: list[tuple[float, list[str]]]
) -> None:
    encode = _encode(backend)
    table = byte_lengths(backend)
    assert table is not None
    cache = TokenPrefixCache(encode, table, min_bytes=256, block=64, margin=32)
    text = "".join(base)
    assert cache.tokens(text) == encode(text)
    for keep, extra in turns:  # cut the last prompt anywhere (inside a word too), then add to it
        text = text[: int(len(text) * keep)] + "".join(extra)
        assert cache.tokens(text) == encode(text)
    assert cache.tokens(text) == encode(text)  # a repeat


def test_a_mooncake_conversation_reuses_its_earlier_turns(backend: Any) -> None:
    encode = _encode(backend)
    table = byte_lengths(backend)
    assert table is not None
    cache = TokenPrefixCache(encode, table)
    blocks = [block_text(i, 91) for i in range(40)]
    for turn in range(4, 40, 5):  # each turn: the conversation so far, the last block cut short
        text = "<|bos|><|user|>\n" + "".join(blocks[:turn]) + blocks[turn][:40] + "<|end|>\n<|assistant|>\n"
        assert cache.tokens(text) == encode(text)
    # turns 4 and 9 are under min_bytes (tokenized whole, not kept); 14 is new; 19 to 39 extend it
    assert (cache.hits, cache.misses, cache.mismatches) == (5, 1, 0)


def test_the_cache_keeps_at_most_its_bounds(backend: Any) -> None:
    encode = _encode(backend)
    table = byte_lengths(backend)
    assert table is not None
    cache = TokenPrefixCache(encode, table, max_entries=3, max_tokens=10_000)
    texts = [block_text(1000 + i, 2000) for i in range(6)]
    for text in texts:
        cache.tokens(text)
    assert len(cache._entries) == 3 and cache._tokens <= 10_000
    assert cache.tokens(texts[0]) == encode(texts[0])  # evicted: tokenized again
    assert cache.misses == 7
