"""In precise mode a session pulls its turns home only while home still holds some of the prompt.

The ``prefix`` policy is built as the router builds it, with precise state (the tiny model's
tokenizer, two workers' event endpoints that nobody publishes on); what each worker holds is fed to
its index as the KV events vLLM would send, made from the Hugging Face tokenizer's own tokens of the
prompt (the reference, independent of the router's tokenizing).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime.router.kv_events import BlockRemoved, BlockStored, KvEventBatch
from runtime.router.policies import RequestView, make_policy
from runtime.router.workers import Worker

pytestmark = pytest.mark.timeout(120)

BLOCK = 4
URLS = ["http://127.0.0.1:9401", "http://127.0.0.1:9402"]
HISTORY = "The conversation so far, long enough for many blocks of four tokens. " * 6


def _turn(text: str) -> RequestView:
    return RequestView("completions", {"model": "tiny", "prompt": text, "max_tokens": 8}, "session-7")


def _events(tokens: list[int]) -> KvEventBatch:
    full = len(tokens) // BLOCK * BLOCK
    hashes = list(range(1000, 1000 + full // BLOCK))
    return KvEventBatch(
        ts=0.0,
        events=[BlockStored(block_hashes=hashes, token_ids=tokens[:full], block_size=BLOCK, medium="GPU")],
    )


def _route(tiny_model: Path, evicted: bool) -> tuple[str, str]:
    """A session's first turn goes home; home is loaded; where the second turn goes, and why."""
    from transformers import AutoTokenizer

    reference: list[int] = AutoTokenizer.from_pretrained(str(tiny_model))(HISTORY)["input_ids"]

    async def run() -> tuple[str, str]:
        params: dict[str, Any] = {
            "tokenizer": str(tiny_model),
            "kv_events": {url: f"ipc:///nonexistent/grove-test-{i}" for i, url in enumerate(URLS)},
            "kv_block_size": BLOCK,
            "kv_pending_ttl": 1e-6,  # a routed prompt is not assumed held: only events count
            "feedback": False,
            "fanout_weight": 0,
        }
        policy = make_policy("prefix", params)
        pool = [Worker(url, "worker") for url in URLS]  # type: ignore[arg-type]
        await policy.start(URLS)
        try:
            first = _turn(HISTORY)
            choice = policy.choose(pool, first)
            assert choice is not None
            home = choice.worker
            policy.on_routed(home, first)
            cache = policy.scorers[1][0].precise  # type: ignore[attr-defined]
            cache.apply(home.url, _events(reference))
            if evicted:
                removed = [1000 + i for i in range(len(reference) // BLOCK)]
                cache.apply(
                    home.url, KvEventBatch(ts=0.0, events=[BlockRemoved(block_hashes=removed, medium="GPU")])
                )
            home.tokens_in_flight = 40  # ten blocks of work in flight at home, none elsewhere
            await asyncio.sleep(0.01)  # past the pending TTL
            second = policy.choose(pool, _turn(HISTORY + " And the next question?"))
            assert second is not None
            return ("home" if second.worker is home else "other"), second.reason
        finally:
            await policy.close()

    return asyncio.run(run())


def test_a_session_stays_home_while_home_holds_its_prompt(tiny_model: Path) -> None:
    where, reason = _route(tiny_model, evicted=False)
    assert where == "home", reason
    assert "session-affinity session-7" in reason and "kv-hit" in reason


def test_a_session_whose_home_evicted_its_prompt_goes_where_it_costs_least(tiny_model: Path) -> None:
    where, reason = _route(tiny_model, evicted=True)
    assert where == "other", reason  # the session would have pulled it to the busier home
    assert "session session-7 moved from" in reason and "kv-miss" in reason
