"""What the ``prefix`` policy's precise mode costs the router per request, by prompt length and by step.

Precise mode (``runtime/router/policies/cache/precise_cache.py``) looks a prompt up in the workers'
KV-event index by its own tokens, so before routing it renders the chat template, tokenizes, and
chains the tokens into block keys. This bench times each step on its own, on the bench model's
tokenizer, for chat prompts of about 1k, 4k and 8k tokens, then the whole decision (``choose`` +
``on_routed`` over two workers, one of which holds the prompt's first half) in precise mode against
the estimate alone. ``next turn`` is the conversation's next turn (two more short messages) right
after the prompt, which the router tokenizes from the earlier turn's tokens (``token_prefix_cache.py``).

Run: ``python -m tests.bench precise`` (part of ``make bench``, about a minute). Timings are CPU time of one
process, best of several repeats; on a shared machine they are noisy, so compare rows side by side.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.router.kv_events import BlockStored, KvEventBatch
from runtime.router.policies import RequestView
from runtime.router.policies.cache.kv_index import chain_keys
from runtime.router.policies.policy import Policy
from runtime.router.policies.registry import make_policy
from runtime.router.policies.scorers.prefix import PrefixScorer
from runtime.router.workers import Worker
from tests.bench.mooncake_trace import block_text
from tests.bench.router_bench import ROOT

BLOCK = 32
URLS = ["http://127.0.0.1:1", "http://127.0.0.1:2"]


def _time(fn: Callable[[], object], repeat: int = 7, number: int = 0) -> float:
    """Best per-call CPU seconds of ``fn`` over ``repeat`` rounds (``number`` calls each, auto if 0)."""
    if not number:
        number, spent = 1, 0.0
        while spent < 0.05:
            start = time.process_time()
            for _ in range(number):
                fn()
            spent = time.process_time() - start
            number *= 2
    rounds = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn()
        rounds.append((time.process_time() - start) / number)
    return min(rounds)


def _chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 16}


def _prompt(tokens: int, tok: Any) -> str:
    """A word-salad prompt of about ``tokens`` tokens."""
    text, i = "", 0
    while len(tok(text)["input_ids"]) < tokens:
        text += block_text(i, 512)
        i += 1
    ids = tok(text)["input_ids"][:tokens]
    return str(tok.decode(ids))


def _held_batch(tokens: list[int]) -> KvEventBatch:
    """The events a worker would send after caching these tokens' full blocks."""
    full = len(tokens) // BLOCK * BLOCK
    hashes: list[int | bytes] = list(range(1, full // BLOCK + 1))
    stored = BlockStored(block_hashes=hashes, token_ids=tokens[:full], block_size=BLOCK, medium="GPU")
    return KvEventBatch(ts=0.0, events=[stored])


def _row(label: str, text: str, tok: Any, precise: Policy, estimate: Policy, workers: list[Worker]) -> None:
    """Time each step of precise mode, and both whole decisions, on one chat prompt and on its next turn."""
    scorer = next(s for s, _ in precise.scorers if isinstance(s, PrefixScorer))
    assert scorer.precise is not None
    cache = scorer.precise
    body = _chat(text)
    messages = body["messages"]
    turn = _chat(text)
    turn["messages"] = [
        *messages,
        {"role": "assistant", "content": "ok."},
        {"role": "user", "content": block_text(99, 300)},
    ]
    rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    tokens = cache.tokenizer.tokens(RequestView("chat", body)) or []
    prefixes = cache.tokenizer.prefixes

    def cold(view_body: dict[str, Any]) -> None:
        if prefixes is not None:
            prefixes.clear()  # a prompt the router has not seen
        cache.tokenizer.tokens(RequestView("chat", view_body))

    def both() -> None:
        cold(body)
        cache.tokenizer.tokens(RequestView("chat", turn))

    render = _time(lambda: tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    tokenize = _time(lambda: tok(rendered, add_special_tokens=False)["input_ids"])
    first = _time(lambda: cold(body))
    next_turn = _time(both) - first
    keys = _time(lambda: chain_keys(tokens, BLOCK))
    for url, held in zip(URLS, (tokens[: len(tokens) // 2], tokens[::-1][:BLOCK]), strict=True):
        cache.index.clear(url)
        cache.apply(url, _held_batch(held))  # the first half on one worker, an unrelated block on the other

    def lookups() -> None:
        req = RequestView("chat", body)
        req.memo["prompt-tokens"] = tokens
        req.memo[f"chain-keys/{BLOCK}"] = chain_keys(tokens, BLOCK)
        for w in workers:
            scorer.view(w, req)

    look = _time(lookups) - keys

    def decide(policy: Policy) -> Callable[[], None]:
        def run() -> None:
            if prefixes is not None:
                prefixes.clear()
            req = RequestView("chat", body)
            choice = policy.choose(workers, req)
            assert choice is not None
            policy.on_routed(choice.worker, req)
            choice.worker.tokens_in_flight = 0

        return run

    full, est = _time(decide(precise)), _time(decide(estimate))
    us = 1e6
    print(
        f"{label:>12} {render * us:7.0f} {tokenize * us:9.0f} {first * us:8.0f} {next_turn * us:9.0f} {keys * us:6.0f} "
        f"{look * us:8.0f} {full * us:8.0f} {est * us:8.0f}   ({len(tokens)} tokens, {len(text)} chars)"
    )


async def _run() -> None:
    from transformers import AutoTokenizer

    model = ROOT / ".cache" / "tiny-model"
    tok = AutoTokenizer.from_pretrained(str(model))
    precise = make_policy(
        "prefix",
        {"tokenizer": str(model), "kv_events": {u: f"ipc:///nonexistent/{i}" for i, u in enumerate(URLS)}},
    )
    estimate = make_policy("prefix", {})
    await precise.start(URLS)
    workers = [Worker(u, "worker") for u in URLS]
    print(f"tokenizer {Path(model).name}; CPU µs per request, best of 7 (noisy machine)")
    head = f"{'prompt':>12} {'render':>7} {'tokenize':>9} {'router':>8} {'next turn':>9} {'keys':>6} {'lookups':>8} {'precise':>8} {'estimate':>8}"
    print(head)
    try:
        for size in (1024, 4096, 8192):
            _row(f"{size} tokens", _prompt(size, tok), tok, precise, estimate, workers)
    finally:
        await precise.close()
    print(
        "render/tokenize: the chat template alone, then the rendered text alone (the tokenizer's own call); "
        "router: the router's tokens of a prompt it has not seen; next turn: of the next turn (two more "
        "messages, about 100 tokens) after it; keys: chain keys of the tokens; lookups: the index for both "
        "workers; precise/estimate: the whole decision (choose + on_routed) on an unseen prompt"
    )


def main() -> None:
    """Print the table (``make bench`` runs every ``*_bench.py`` module's ``main``)."""
    asyncio.run(_run())


if __name__ == "__main__":
    main()
