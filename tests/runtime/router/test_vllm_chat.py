"""Agents' tool-calling chats get precise tokens, and they are exactly the ones vLLM's serving path renders.

The reference is vLLM 0.32 itself, in this process: the request parsed by its request model
(``ChatCompletionRequest``), rendered by ``OnlineRenderer.render_chat`` (the chat endpoint's own
path: tool dumps, message parsing and normalization, content-format detection, developer-role
handling, ``apply_chat_template`` with a transformers tokenizer loaded from the same model directory)
with a tool parser enabled, as a worker serving agents runs (``--enable-auto-tool-choice``). The
router's tokens (``PromptTokenizer``, no vLLM or transformers) must equal its prompt token ids, on
copies of the tiny model with realistic tool templates: one in the style of Qwen2.5's (content as a
string, ``tools | tojson``, calls' arguments as JSON), one that loops over content parts and dumps
whole messages with ``tojson`` (so every key and its order is compared), and named templates where a
request with tools gets ``tool_use``. Chats whose normalization is not mirrored must give None, and
chats of any shape (hypothesis: valid ones and odd ones) either give None or vLLM's own tokens.
Importing vLLM costs about 20 s, paid once for the module.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runtime.router.policies import RequestView
from runtime.router.policies.cache.chat_template import ChatTemplate
from runtime.router.policies.cache.prompt_tokens import PromptTokenizer
from tests.runtime.router.tool_templates import QWEN_STYLE, TOOLS, WEATHER, model_with_template

pytestmark = pytest.mark.timeout(300)

PARTS_STYLE = """{{- bos_token }}
{%- if tools is not none %}<|system|>{{ tools | tojson }}<|end|>
{% endif %}
{%- for message in messages %}
{%- if message['role'] not in ['system', 'developer', 'user', 'assistant', 'tool'] %}{{ raise_exception('role') }}{% endif %}
<|{{ message['role'] }}|>
{%- if message['content'] is string %}{{ message['content'] }}
{%- else %}{%- for part in message['content'] %}{%- if part['type'] == 'text' %}{{ part['text'] }}{%- endif %}{%- endfor %}
{%- endif %}
{{ message | tojson }}<|end|>
{% endfor %}
{%- if add_generation_prompt %}<|assistant|>
{% endif %}"""
"""Loops over content parts (vLLM's ``auto`` picks ``openai``), dumps each whole message, names ``developer``."""

AGENT_TURNS: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a coding agent. Use the tools."},
    {"role": "user", "content": "What is the weather in Paris and Tokyo, and what time is it?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"unit": "c", "city": "Paris"}'},
            },
            {
                "type": "function",
                "function": {"arguments": '{"city":"東京"}', "name": "get_weather"},
                "id": "c2",
            },
            {"id": "call_3", "type": "function", "function": {"name": "now", "arguments": ""}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18.5}'},
    {
        "role": "tool",
        "tool_call_id": "c2",
        "name": "get_weather",
        "content": [{"type": "text", "text": "22"}],
    },
    {
        "role": "tool",
        "tool_call_id": "call_3",
        "content": [{"type": "text", "text": "12:00"}, {"type": "text", "text": "UTC"}],
    },
    {
        "role": "assistant",
        "content": "Checking once more.",
        "tool_calls": [
            {
                "index": 0,
                "id": "c4",
                "type": "function",
                "function": {"name": "now", "arguments": "not json"},
            },
            {"id": "c5", "type": "function", "function": {"name": "now", "arguments": "[1, 2]"}, "index": 1},
        ],
        "refusal": None,
        "function_call": None,
        "audio": None,
        "annotations": [],
    },
    {"role": "tool", "tool_call_id": "c4", "content": "12:01"},
    {"role": "tool", "tool_call_id": "c5", "content": ""},
    {"role": "assistant", "content": "Paris 18.5 C, Tokyo 22 C, 12:01 UTC.", "tool_calls": []},
    {"role": "user", "content": "Thanks, now in Fahrenheit?", "name": "ana"},
]

CHATS: dict[str, dict[str, Any]] = {
    "tools-on-a-first-turn": {"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS},
    "an-agents-history": {"messages": AGENT_TURNS, "tools": TOOLS},
    "history-without-tools": {"messages": AGENT_TURNS},
    "a-required-call": {"messages": AGENT_TURNS, "tools": TOOLS, "tool_choice": "required"},
    "a-named-call": {
        "messages": AGENT_TURNS,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    },
    "calls-declined": {"messages": AGENT_TURNS, "tools": TOOLS, "tool_choice": "none"},
    "no-generation-prompt": {"messages": AGENT_TURNS[:4], "tools": [WEATHER], "add_generation_prompt": False},
    "text-parts": {
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "be terse"}, {"type": "text", "text": "be kind"}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "part one"},
                    {"type": "text", "text": " part two\n", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": ""},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": "plain again"},
        ]
    },
    "claude-code-via-a-gateway": {
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=93f1"},
                    {"type": "text", "text": "x-anthropic-billing-header: cch=1\nYou are Claude Code."},
                    {"type": "text", "text": "Be careful.", "cache_control": {"type": "ephemeral"}},
                ],
            },
            {"role": "user", "content": "list the files"},
        ],
        "tools": [WEATHER],
    },
    "developer-and-system-messages": {
        "messages": [
            {"role": "system", "content": "first system"},
            {"role": "developer", "content": "developer rules"},
            {"role": "user", "content": "hi"},
            {
                "role": "developer",
                "content": [{"type": "text", "text": "late"}, {"type": "text", "text": "rules"}],
            },
        ]
    },
    "reasoning-replayed": {
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "reasoning": "add them"},
            {"role": "user", "content": "3+3?"},
            {"role": "assistant", "content": "6", "reasoning_content": "again", "tool_calls": None},
            {"role": "user", "content": "and?"},
        ]
    },
}

UNSUPPORTED: dict[str, dict[str, Any]] = {
    "an-image": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ]
    },
    "audio": {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
            }
        ]
    },
    "an-unknown-part": {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "x"}]}]},
    "a-text-part-with-a-uuid": {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "uuid": "u"}]}]
    },
    "a-string-part": {"messages": [{"role": "user", "content": ["bare string part"]}]},
    "documents": {"documents": [{"title": "t", "text": "x"}]},
    "its-own-template": {"chat_template": "{{ messages }}"},
    "template-kwargs": {"chat_template_kwargs": {"enable_thinking": False}},
    "legacy-functions": {"functions": [{"name": "f"}]},
    "legacy-function-call": {"function_call": "auto"},
    "a-function-role": {"messages": [{"role": "function", "name": "f", "content": "x"}]},
    "reasoning-effort": {"reasoning_effort": "low"},
    "continue-final-message": {"continue_final_message": True, "add_generation_prompt": False},
    "add-special-tokens": {"add_special_tokens": True},
    "truncation": {"truncate_prompt_tokens": 5},
    "a-cache-salt": {"cache_salt": "s" * 16},
    "an-empty-tool-list": {"tools": []},  # vLLM refuses it
    "a-custom-tool": {"tools": [{"type": "custom", "custom": {"name": "f"}}]},
    "a-lax-strict-flag": {"tools": [{"type": "function", "function": {"name": "f", "strict": "true"}}]},
    "arguments-as-an-object": {
        "messages": [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
                ],
            }
        ]
    },
    "a-called-function-with-extra-keys": {
        "messages": [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}", "x": 0}}
                ],
            }
        ]
    },
    "a-refusal": {"messages": [{"role": "assistant", "content": "", "refusal": "no"}]},
    "a-user-without-content": {"messages": [{"role": "user", "content": None}]},
    "an-unknown-message-key": {"messages": [{"role": "user", "content": "x", "task": "t"}]},
}


Reference = Callable[[dict[str, Any]], list[int]]


@pytest.fixture(scope="module")
def models(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vllm-chat")
    return {
        "qwen-style": model_with_template(tiny_model, root / "qwen", QWEN_STYLE),
        "parts-style": model_with_template(tiny_model, root / "parts", PARTS_STYLE),
        "named-tool-use": model_with_template(tiny_model, root / "named", None, {"tool_use": QWEN_STYLE}),
        "tiny": tiny_model,
    }


@pytest.fixture(scope="module")
def vllm_render(models: dict[str, Path]) -> Callable[[str], Reference]:
    """vLLM's serving-path rendering for one of the model directories (its prompt token ids)."""
    from vllm.config import ModelConfig, VllmConfig
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.serve.engine.protocol import ErrorResponse
    from vllm.renderers.online_renderer import OnlineRenderer
    from vllm.renderers.registry import renderer_from_config

    renderers: dict[str, Any] = {}

    def reference(name: str) -> Reference:
        if name not in renderers:
            folder = str(models[name])
            config = ModelConfig(model=folder, tokenizer=folder)
            renderers[name] = OnlineRenderer(
                config,
                renderer_from_config(VllmConfig(model_config=config)),
                request_logger=None,
                chat_template=None,
                chat_template_content_format="auto",
                enable_auto_tools=True,
                tool_parser="pythonic",
            )

        def ids(body: dict[str, Any]) -> list[int]:
            request = ChatCompletionRequest.model_validate(json.loads(json.dumps({"model": "m", **body})))
            result = asyncio.run(renderers[name].render_chat(request))
            assert not isinstance(result, ErrorResponse), result
            _, (engine_input,) = result
            return [int(t) for t in engine_input["prompt_token_ids"]]

        return ids

    return reference


@pytest.fixture(scope="module")
def vllm_verdict(
    vllm_render: Callable[[str], Reference],
) -> Callable[[str, dict[str, Any]], list[int] | None]:
    """vLLM's prompt token ids for a body, or None when vLLM refuses it (a 4xx: nothing is cached)."""

    def verdict(name: str, body: dict[str, Any]) -> list[int] | None:
        try:
            return vllm_render(name)(body)
        except Exception:  # noqa: BLE001 - a refusal of any kind (validation, template, assertion above)
            return None

    return verdict


@pytest.fixture(scope="module")
def router_tokens(models: dict[str, Path]) -> Callable[[str, dict[str, Any]], list[int] | None]:
    tokenizers = {name: PromptTokenizer(str(folder)) for name, folder in models.items()}

    def tokens(name: str, body: dict[str, Any]) -> list[int] | None:
        return tokenizers[name].tokens(RequestView("chat", json.loads(json.dumps({"model": "m", **body}))))

    return tokens


@pytest.mark.parametrize("model", ["qwen-style", "parts-style", "named-tool-use", "tiny"])
@pytest.mark.parametrize("chat", sorted(CHATS))
def test_agent_chats_get_the_tokens_vllm_renders(
    model: str,
    chat: str,
    vllm_render: Callable[[str], Reference],
    router_tokens: Callable[[str, dict[str, Any]], list[int] | None],
) -> None:
    body = CHATS[chat]
    ours = router_tokens(model, body)
    assert ours is not None, "a supported chat was routed by estimate"
    assert ours == vllm_render(model)(body)


def test_the_request_is_not_changed_by_normalizing_it(
    router_tokens: Callable[[str, dict[str, Any]], list[int] | None],
) -> None:
    body = json.loads(json.dumps(CHATS["an-agents-history"]))
    before = json.dumps(body)
    assert router_tokens("parts-style", body) is not None
    assert json.dumps(body) == before  # the router forwards the body it tokenized


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_chats_whose_normalization_is_not_mirrored_are_left_to_the_estimate(
    case: str, router_tokens: Callable[[str, dict[str, Any]], list[int] | None]
) -> None:
    plain = {"messages": [{"role": "user", "content": "hi"}]}
    assert router_tokens("parts-style", plain) is not None
    assert router_tokens("parts-style", {**plain, **UNSUPPORTED[case]}) is None


MACRO_STYLE = (
    "{% macro render(text) %}{% for p in text %}{{ p.text }}{% endfor %}{% endmacro %}"
    "{% for m in messages %}{{ render(m.content) }}{% endfor %}"
)
DETECTION_TEMPLATES = {
    "qwen-style": QWEN_STYLE,
    "parts-style": PARTS_STYLE,
    "a-macro-parameter": MACRO_STYLE,
    "a-macro-keyword": MACRO_STYLE.replace("render(m.content)", "render(text=m.content)"),
    "an-alias-of-messages": "{% set msgs = messages[1:] %}{% for m in msgs %}{% for p in m['content'] %}{% endfor %}{% endfor %}",
    "a-filtered-loop": "{% for m in messages %}{% for p in m.content | selectattr('type') %}{% endfor %}{% endfor %}",
    "a-content-variable": "{% for m in messages %}{% set content = m.content %}{% endfor %}{% for p in content %}{% endfor %}",
    "a-string-test-only": "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% endif %}{% endfor %}",
    "an-unpacking-loop": "{% for m in messages %}{% for a, b in m.content %}{% endfor %}{% endfor %}",
    "a-tuple-assignment": "{% set a, b = messages %}{% for m in messages %}{% for p in m.content %}{% endfor %}{% endfor %}",
    "a-loop-over-other-keys": "{% for m in messages %}{% for c in m.tool_calls %}{% endfor %}{% endfor %}",
}


def _vllm_fallback_templates() -> dict[str, str]:
    """The chat templates vLLM ships for models without one (read from the installed package, not imported)."""
    spec = importlib.util.find_spec("vllm")
    assert spec is not None and spec.origin is not None
    folder = Path(spec.origin).parent / "transformers_utils" / "chat_templates"
    return {f"vllm-{path.stem}": path.read_text() for path in sorted(folder.glob("*.jinja"))}


@pytest.mark.parametrize("name", sorted({**DETECTION_TEMPLATES, **_vllm_fallback_templates()}))
def test_content_format_detection_is_vllms_own(name: str) -> None:
    from vllm.renderers.hf import _detect_content_format

    source = {**DETECTION_TEMPLATES, **_vllm_fallback_templates()}[name]
    reference = _detect_content_format.__wrapped__(source, default="string")
    assert ChatTemplate(source, {}).content_format == reference


@pytest.mark.parametrize("model", ["qwen-style", "parts-style", "named-tool-use"])
def test_a_tokenizer_only_transformers_loads_renders_agent_chats_as_vllm_does_too(
    model: str,
    models: dict[str, Path],
    vllm_render: Callable[[str], Reference],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The router's other path (a hub name, or files ``tokenizer_files.py`` leaves to transformers)."""
    from runtime.router.policies.cache import prompt_tokens

    monkeypatch.setattr(prompt_tokens, "load_local", lambda source: None)
    tokenizer = PromptTokenizer(str(models[model]))
    for name in ("an-agents-history", "text-parts", "developer-and-system-messages"):
        body = CHATS[name]
        ours = tokenizer.tokens(RequestView("chat", json.loads(json.dumps({"model": "m", **body}))))
        assert ours == vllm_render(model)(body), name


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_ANY = st.one_of(st.none(), _TEXT, st.booleans(), st.integers(-2, 2), st.just([]), st.just({}))
_TEXT_PART = st.fixed_dictionaries(
    {"type": st.just("text"), "text": _TEXT}, optional={"cache_control": st.just({"type": "ephemeral"})}
)
_ODD_PART = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "refusal", "thinking", "image_url"]), "text": _ANY},
        optional={"cache_control": _ANY, "uuid": _TEXT},
    ),
    _TEXT,
)
_CONTENT = st.one_of(_TEXT, st.lists(_TEXT_PART, max_size=3))
_ARGUMENTS = st.one_of(
    _TEXT, st.sampled_from(['{"b": "é", "a": [1, {"c": null}]}', "[]", "", "{", '"s"', "{}"])
)
_CALL = st.fixed_dictionaries(
    {
        "id": _TEXT,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": _TEXT, "arguments": _ARGUMENTS}),
    },
    optional={"index": st.integers(0, 3)},
)
_ODD_CALL = st.fixed_dictionaries(
    {
        "id": _ANY,
        "type": st.sampled_from(["function", "custom"]),
        "function": st.fixed_dictionaries({"name": _ANY}),
    },
    optional={"arguments": _ANY, "x": _ANY},
)
_PLAIN = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "ipython"]), "content": _CONTENT},
    optional={"name": _TEXT},
)
_ASSISTANT = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={
        "content": st.one_of(st.none(), _CONTENT),
        "tool_calls": st.one_of(st.none(), st.lists(_CALL, max_size=2)),
        "reasoning": st.one_of(_TEXT, st.none()),
        "reasoning_content": _TEXT,
        "refusal": st.none(),
        "name": _TEXT,
    },
)
_TOOL_RESULT = st.fixed_dictionaries(
    {"role": st.just("tool"), "tool_call_id": _TEXT, "content": _CONTENT}, optional={"name": _TEXT}
)
_ODD_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])},
    optional={
        "content": st.one_of(_ANY, st.lists(st.one_of(_TEXT_PART, _ODD_PART), max_size=3)),
        "name": _ANY,
        "tool_calls": st.one_of(_ANY, st.lists(st.one_of(_CALL, _ODD_CALL), max_size=2)),
        "tool_call_id": _ANY,
        "reasoning": _ANY,
        "refusal": _ANY,
        "task": _TEXT,
    },
)
_MESSAGE = st.one_of(_PLAIN, _ASSISTANT, _TOOL_RESULT, _PLAIN, _ASSISTANT, _TOOL_RESULT, _ODD_MESSAGE)
_TOOL = st.fixed_dictionaries(
    {
        "function": st.fixed_dictionaries(
            {"name": _TEXT},
            optional={
                "description": st.one_of(_TEXT, st.none()),
                "parameters": st.one_of(st.none(), st.just({"type": "object", "properties": {}})),
                "strict": st.one_of(st.booleans(), st.none(), st.booleans(), _ANY),
            },
        )
    },
    optional={
        "type": st.sampled_from(["function", "function", "custom"]),
        "defer_loading": st.one_of(st.booleans(), _ANY),
    },
)
_BODY = st.fixed_dictionaries(
    {"messages": st.lists(_MESSAGE, min_size=1, max_size=6)},
    optional={"tools": st.lists(_TOOL, max_size=2), "add_generation_prompt": st.one_of(st.booleans(), _ANY)},
)


@pytest.mark.parametrize("model", ["qwen-style", "parts-style"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BODY)
def test_any_chat_gets_vllms_tokens_or_the_estimate(
    model: str,
    body: dict[str, Any],
    vllm_verdict: Callable[[str, dict[str, Any]], list[int] | None],
    router_tokens: Callable[[str, dict[str, Any]], list[int] | None],
) -> None:
    """Chats of every shape, odd ones included: where vLLM renders one and the router has tokens, they agree."""
    ours = router_tokens(model, body)
    if ours is not None:
        theirs = vllm_verdict(model, body)
        event("vLLM refused it" if theirs is None else "compared")
        assert theirs is None or ours == theirs
    else:
        event("routed by estimate")
