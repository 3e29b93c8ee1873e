"""A model directory's tokenizer read without transformers gives transformers' own text and tokens.

The reference is transformers itself (``AutoTokenizer``, ``apply_chat_template``, ``__call__``), on
copies of the tiny model's tokenizer files with the settings that change what transformers does:
BOS/EOS flags, the chat template in each of its three homes, and template features (loop controls,
``tojson``, ``raise_exception``, ``{% generation %}``). Directories only transformers can read
faithfully must not be taken.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jinja2
import pytest

from runtime.router.policies import RequestView
from runtime.router.policies.cache.prompt_tokens import PromptTokenizer
from runtime.router.policies.cache.tokenizer_files import load_local

pytestmark = pytest.mark.timeout(180)

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}"
    "{% if loop.index > 6 %}{% break %}{% endif %}<|{{ m['role'] }}|>\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}"
    "{% else %}{{ m['content'] }}{% endif %}<|end|>\n{% endfor %}"
    "{% if tools %}{{ tools | tojson }}{% endif %}{{ {'meta': 'é<&>'} | tojson }}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}{{ eos_token }}"
)
CHATS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "hi"}],
    [
        {"role": "system", "content": "be terse  \t with <|user|> inside"},
        {"role": "user", "content": "naïve café 東京 🚀"},
        {"role": "assistant", "content": "sure"},
        {"role": "user", "content": "again\n\n"},
    ],
    [{"role": "user", "content": f"turn {i}"} for i in range(9)],  # past the template's {% break %}
]
TEXTS = ["", "plain words", " spaces  and\ttabs\n", "<|bos|> inside"]


def _variant(tiny_model: Path, tmp_path: Path, config: dict[str, Any], where: str = "jinja") -> Path:
    """A copy of the tiny model's tokenizer files, its config updated, the template stored ``where``."""
    out = tmp_path / "tok"
    out.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        shutil.copy(tiny_model / name, out / name)
    base = json.loads((out / "tokenizer_config.json").read_text())
    base.update(config)
    if where == "jinja":
        (out / "chat_template.jinja").write_text(TEMPLATE)
    elif where == "config":
        base["chat_template"] = TEMPLATE
    elif where == "named":
        base["chat_template"] = [
            {"name": "other", "template": "x"},
            {"name": "default", "template": TEMPLATE},
        ]
    (out / "tokenizer_config.json").write_text(json.dumps(base))
    return out


def _reference_ids(tok: Any, messages: list[dict[str, Any]]) -> list[int]:
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return [int(t) for t in (ids["input_ids"] if hasattr(ids, "keys") else ids)]


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ({}, "jinja"),
        ({"add_bos_token": True}, "config"),  # transformers ignores the flags when tokenizer.json exists
        ({"add_bos_token": True, "add_eos_token": True}, "named"),
        ({}, "no-post-processor"),
    ],
)
def test_text_and_tokens_are_transformers_own(
    tiny_model: Path, tmp_path: Path, config: dict[str, Any], where: str
) -> None:
    from transformers import AutoTokenizer

    folder = _variant(tiny_model, tmp_path, config, where)
    if where == "no-post-processor":  # transformers then sets a plain one
        (folder / "chat_template.jinja").write_text(TEMPLATE)
        backend = json.loads((folder / "tokenizer.json").read_text())
        backend["post_processor"] = None
        (folder / "tokenizer.json").write_text(json.dumps(backend))
    local = load_local(str(folder))
    assert local is not None and local.template is not None
    tok = AutoTokenizer.from_pretrained(str(folder))
    ours = PromptTokenizer(str(folder))
    for messages in CHATS:
        assert local.template.render(messages) == tok.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        assert ours.tokens(RequestView("chat", {"messages": messages})) == _reference_ids(tok, messages)
    tools = [{"type": "function", "function": {"name": "f", "description": "ü"}}]
    assert local.template.render(CHATS[0], tools=tools) == tok.apply_chat_template(
        CHATS[0], tools=tools, add_generation_prompt=True, tokenize=False
    )
    for text in TEXTS:
        reference = [int(t) for t in tok(text)["input_ids"]]
        assert ours.tokens(RequestView("completions", {"prompt": text})) == reference
    # the template's own refusal is the same error, and the router routes such a chat by estimate
    refused = [{"role": "tool", "content": "x"}]
    with pytest.raises(jinja2.TemplateError, match="no tools"):
        local.template.render(refused)
    with pytest.raises(jinja2.TemplateError, match="no tools"):
        tok.apply_chat_template(refused, tokenize=False)
    assert ours.tokens(RequestView("chat", {"messages": refused})) is None


@pytest.mark.parametrize(
    "config",
    [
        {"tokenizer_class": "LlamaTokenizer"},  # a model family's class may build its pipeline in code
        {"bos_token": "<|not-in-the-vocabulary|>"},  # transformers would add it
        {"split_special_tokens": True},
        {"extra_special_tokens": ["<|system|>", "<|missing|>"]},
    ],
)
def test_directories_only_transformers_reads_faithfully_are_left_to_it(
    tiny_model: Path, tmp_path: Path, config: dict[str, Any]
) -> None:
    assert load_local(str(_variant(tiny_model, tmp_path, config))) is None


def test_a_legacy_special_tokens_map_fills_gaps_and_a_disagreeing_one_is_left_to_transformers(
    tiny_model: Path, tmp_path: Path
) -> None:
    folder = _variant(tiny_model, tmp_path, {"bos_token": None})
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": {"content": "<|bos|>"}}))
    local = load_local(str(folder))
    assert local is not None and local.template is not None
    assert local.template.render(CHATS[0]).startswith("<|bos|>")
    (folder / "special_tokens_map.json").write_text(json.dumps({"eos_token": "<|end|>"}))
    assert load_local(str(folder)) is None  # the config says <|eos|>


@pytest.mark.parametrize("where", ["config", "files"])
def test_a_chat_with_tools_gets_the_template_named_tool_use_as_transformers_picks_it(
    tiny_model: Path, tmp_path: Path, where: str
) -> None:
    from transformers import AutoTokenizer

    tool_use = "<|tools|>{{ tools | tojson }}" + TEMPLATE
    folder = _variant(tiny_model, tmp_path, {}, where="named" if where == "config" else "jinja")
    if where == "config":
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["chat_template"].append({"name": "tool_use", "template": tool_use})
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    else:
        (folder / "additional_chat_templates").mkdir()
        (folder / "additional_chat_templates" / "tool_use.jinja").write_text(tool_use)
    tok = AutoTokenizer.from_pretrained(str(folder))
    ours = PromptTokenizer(str(folder))
    # tools as vLLM hands them to the template (its dump), so transformers can be given the same
    tools = [{"type": "function", "function": {"name": "f", "description": "ü", "parameters": None}}]
    for messages in CHATS:
        reference = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True)
        reference = [int(t) for t in (reference["input_ids"] if hasattr(reference, "keys") else reference)]
        assert ours.tokens(RequestView("chat", {"messages": messages, "tools": tools})) == reference
        assert ours.tokens(RequestView("chat", {"messages": messages})) == _reference_ids(tok, messages)
    assert "<|tools|>" in tok.apply_chat_template(CHATS[0], tools=tools, tokenize=False)


def test_a_gpt_oss_models_chats_are_left_to_the_estimate_as_vllm_renders_them_with_harmony(
    tiny_model: Path, tmp_path: Path
) -> None:
    folder = _variant(tiny_model, tmp_path, {})
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt_oss"}))
    ours = PromptTokenizer(str(folder))
    assert ours.tokens(RequestView("chat", {"messages": CHATS[0]})) is None
    assert ours.tokens(RequestView("completions", {"prompt": "plain words"})) is not None


def test_named_templates_without_a_default_file_are_left_to_transformers(
    tiny_model: Path, tmp_path: Path
) -> None:
    folder = _variant(tiny_model, tmp_path, {}, where="config")
    (folder / "additional_chat_templates").mkdir()
    (folder / "additional_chat_templates" / "tool_use.jinja").write_text(TEMPLATE)
    assert load_local(str(folder)) is None


def test_a_directory_without_tokenizer_json_or_a_name_is_not_taken(tiny_model: Path, tmp_path: Path) -> None:
    assert load_local(str(tmp_path)) is None
    assert load_local("org/some-model") is None
    assert load_local(str(tiny_model)) is not None
