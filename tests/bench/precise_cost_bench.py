"""What the ``prefix`` policy's precise mode costs the router per request, by prompt length and by step.

Precise mode (``runtime/router/policies/cache/precise_cache.py``) looks a prompt up in the workers'
KV-event index by its own tokens, so before routing it renders the chat template, tokenizes, and
chains the tokens into block keys. This bench times each step on its own, on the bench model's
tokenizer, for chat prompts of about 1k, 4k and 8k tokens, then the whole decision (``choose`` +
``on_routed`` over two workers, one of which holds the prompt's first half) in precise mode against
the estimate alone. ``next turn`` is the conversation's next turn (two more short messages) right
after the prompt, which the router tokenizes from the earlier turn's tokens (``token_prefix_cache.py``).

A second table compares a coding agent's tool-calling chat (the tools on every request, assistant
tool calls, tool results; normalized as vLLM normalizes them, ``cache/vllm_chat.py``) with its plain
twin (the same turns and texts, tools and calls written as JSON text into plain messages: about the
same rendered length), both through a Qwen2.5-style tool template: the normalization alone, the
template alone, the router's tokens of an unseen prompt, and of the next turn.

Run: ``python -m tests.bench precise`` (part of ``make bench``, about a minute). Timings are CPU time of one
process, best of several repeats; on a shared machine they are noisy, so compare rows side by side.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.router.kv_events import BlockStored, KvEventBatch
from runtime.router.policies import RequestView
from runtime.router.policies.cache.kv_index import chain_keys
from runtime.router.policies.cache.prompt_tokens import PromptTokenizer
from runtime.router.policies.cache.vllm_chat import template_messages, template_tools
from runtime.router.policies.policy import Policy
from runtime.router.policies.registry import make_policy
from runtime.router.policies.scorers.prefix import PrefixScorer
from runtime.router.workers import Worker
from tests.bench.mooncake_trace import block_text
from tests.bench.router_bench import ROOT
from tests.runtime.router.tool_templates import QWEN_STYLE, TOOLS, model_with_template

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


def _agent_chat(tokens: int, tokenizer: PromptTokenizer) -> dict[str, Any]:
    """A coding agent's chat of about ``tokens`` rendered tokens: the tools, then rounds of a request,
    two tool calls and their results (the turns agents' histories are made of)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": block_text(0, 1200)}]
    body: dict[str, Any] = {"model": "m", "messages": messages, "tools": TOOLS, "max_tokens": 16}
    i = 0
    while len(tokenizer.tokens(RequestView("chat", json.loads(json.dumps(body)))) or ()) < tokens:
        i += 1
        calls = [
            {
                "id": f"call_{i}_{j}",
                "type": "function",
                "function": {
                    "name": "grep",
                    "arguments": json.dumps(
                        {"pattern": block_text(10 * i + j, 24), "path": f"src/module_{j}.py", "limit": 20}
                    ),
                },
            }
            for j in range(2)
        ]
        messages.append({"role": "user", "content": block_text(1000 + i, 160)})
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        messages.extend(
            {"role": "tool", "tool_call_id": call["id"], "content": block_text(2000 + 10 * i + j, 480)}
            for j, call in enumerate(calls)
        )
    return body


def _tool_rows() -> None:
    """Tool-calling chats against plain chats of the same turns and length, through a tool template."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = model_with_template(ROOT / ".cache" / "tiny-model", Path(tmp) / "model", QWEN_STYLE)
        tokenizer = PromptTokenizer(str(folder))
        print()
        print(
            f"tool chats vs their plain twins (same turns, about the same length; a Qwen2.5-style tool template, {len(TOOLS)} tools)"
        )
        print(
            f"{'':>22}  {'render (plain, tool)':>21} {'router (plain, tool)':>21} {'next turn (plain, tool)':>21}"
        )
        print(f"{'prompt':>12} {'normalize':>9}" + "  plain    tool ratio" * 3)
        for size in (1024, 4096, 8192):
            agent = _agent_chat(size, tokenizer)
            length = len(tokenizer.tokens(RequestView("chat", agent)) or ())
            plain = _plain_twin(agent)
            plain_length = len(tokenizer.tokens(RequestView("chat", plain)) or ())

            def cold(body: dict[str, Any]) -> Callable[[], None]:
                def run() -> None:
                    if tokenizer.prefixes is not None:
                        tokenizer.prefixes.clear()  # a prompt the router has not seen
                    tokenizer.tokens(RequestView("chat", body))

                return run

            def normalize(body: dict[str, Any] = agent) -> None:
                template_tools(body)
                template_messages(body["messages"], "string", supports_developer=False)

            def then(body: dict[str, Any], turn: dict[str, Any]) -> Callable[[], None]:
                def run() -> None:
                    cold(body)()
                    tokenizer.tokens(RequestView("chat", turn))

                return run

            spent = _time(normalize)
            render = [_time(lambda b=body: tokenizer._render(b)) for body in (plain, agent)]
            first = [_time(cold(body)) for body in (plain, agent)]
            turns = (_next_turn(plain, tool=False), _next_turn(agent, tool=True))
            after = [
                _time(then(body, turn)) - us
                for body, turn, us in zip((plain, agent), turns, first, strict=True)
            ]
            cells = " ".join(f"{a * 1e6:7.0f} {b * 1e6:7.0f} {b / a:5.2f}" for a, b in (render, first, after))
            print(
                f"{f'{size} tokens':>12} {spent * 1e6:9.0f}  {cells}"
                f"   ({length} vs {plain_length} tokens, {len(agent['messages'])} messages)"
            )
        print(
            "normalize: the agent chat's tools and messages as vLLM hands them to the template; render: the "
            "template alone; router: the router's tokens of an unseen prompt (normalize, render, tokenize); next "
            "turn: of the next turn right after it (a tool call and its result more for the agent); CPU µs, "
            "each with tool/plain"
        )


def _plain_twin(agent: dict[str, Any]) -> dict[str, Any]:
    """The agent chat without tools: the same turns and texts as plain messages (tools and calls as JSON text)."""
    messages: list[dict[str, Any]] = []
    for message in agent["messages"]:
        if message["role"] == "system":
            schemas = "\n".join(json.dumps(tool) for tool in agent["tools"])
            messages.append({"role": "system", "content": f"{message['content']}\n{schemas}"})
        elif message.get("tool_calls"):
            calls = [json.dumps(call["function"]) for call in message["tool_calls"]]
            messages.append({"role": "assistant", "content": "\n".join(calls)})
        elif message["role"] == "tool":
            messages.append({"role": "user", "content": message["content"]})
        else:
            messages.append(message)
    return {**{k: v for k, v in agent.items() if k != "tools"}, "messages": messages}


def _next_turn(body: dict[str, Any], *, tool: bool) -> dict[str, Any]:
    """The conversation's next request: for an agent, one more tool call and its result; else two messages."""
    messages = list(body["messages"])
    if tool:
        call = {"id": "call_next", "type": "function", "function": {"name": "now", "arguments": "{}"}}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_next", "content": block_text(98, 300)},
        ]
    else:
        messages += [
            {"role": "assistant", "content": "ok."},
            {"role": "user", "content": block_text(99, 300)},
        ]
    return {**body, "messages": messages}


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
    _tool_rows()


def main() -> None:
    """Print the table (``make bench`` runs every ``*_bench.py`` module's ``main``)."""
    asyncio.run(_run())


if __name__ == "__main__":
    main()
