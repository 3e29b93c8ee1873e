"""A chat request as vLLM 0.32 hands it to the chat template: its messages and tools, normalized its way.

vLLM does not render the request's messages as sent. Its request model
(``vllm/entrypoints/openai/chat_completion/protocol.py``: ``ChatCompletionRequest``,
``ChatCompletionToolsParam``; ``FunctionDefinition`` in ``entrypoints/generate/base/protocol.py``)
and its chat parsing (``vllm/renderers/chat_utils.py``: ``_parse_chat_message_content``,
``_postprocess_messages``; ``vllm/renderers/hf.py``: ``safe_apply_chat_template``) rebuild them, and
``OnlineRenderer.render_chat`` (``vllm/renderers/online_renderer.py``) passes the template
``tool.model_dump()`` of each tool. This module rebuilds them the same way for the shapes coding
agents and tool-using pipelines send:

* each tool as its dump: ``{"type": "function", "function": {"name", "description", "parameters"}}``
  with None for an absent description or parameters, ``strict`` and ``defer_loading`` only when set,
  unknown keys dropped;
* each message rebuilt key by key: ``role``, ``content`` (non-empty text parts joined with newlines
  for a ``string`` template, a list of ``{"type": "text", "text"}`` parts for an ``openai`` one, see
  ``content_format.py``; an assistant's missing content is an empty one), an assistant's
  ``tool_calls`` (in the request model's key order, a client's own keys such as ``index`` after
  them, ``arguments`` parsed from its JSON string into an object, ``{}`` when empty, invalid or not
  an object; an empty list dropped) and ``reasoning`` (also as ``reasoning_content``; the null
  ``refusal``, ``function_call``, ``audio`` and empty ``annotations`` an OpenAI client echoes back
  are ignored), a tool result's ``tool_call_id`` (its text parts joined even for an
  ``openai`` template), ``name``; a developer message gains ``tools: None``, and becomes a system
  message (all system messages merged first) when the template never names the developer role;
* a system text's leading ``x-anthropic-billing-header`` line (Claude Code's, new on every request)
  dropped, as vLLM drops it.

Anything else raises ``UnsupportedChat`` and the caller routes by estimate: images, audio and other
part types, part or message keys outside these shapes, legacy ``functions``/``function_call``,
``documents``, a request's own ``chat_template`` or ``chat_template_kwargs``, ``reasoning_effort``,
``continue_final_message``, ``add_special_tokens``, ``truncate_prompt_tokens`` and ``cache_salt``
(the last two change the tokens or the worker's block hashes). It assumes workers run with vLLM's
defaults for what only the server knows: no ``--chat-template`` or
``--default-chat-template-kwargs``, ``--chat-template-content-format auto``, no
``--exclude-tools-when-tool-choice-none``, prompt embeds off. ``tests/runtime/router/test_vllm_chat.py``
checks the tokens against vLLM's own serving path.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.router.policies.cache.content_format import ContentFormat

__all__ = ["UnsupportedChat", "generation_prompt", "template_messages", "template_tools"]

_BILLING_HEADER = "x-anthropic-billing-header"
_UNSUPPORTED_FIELDS = (
    "functions",
    "function_call",
    "documents",
    "chat_template",
    "reasoning_effort",
    "truncate_prompt_tokens",
    "cache_salt",
)
"""Request fields that change the rendering or the worker's cache beyond what is mirrored here
(and ``chat_template_kwargs`` unless empty)."""
_TEXT_PART_KEYS = frozenset({"type", "text", "cache_control"})
"""A text part's keys that vLLM reads (``cache_control`` is carried over to an ``openai`` template's part)."""
_ASSISTANT_NULLS = ("refusal", "function_call", "audio", "annotations")
"""Assistant keys an OpenAI client echoes back, which vLLM ignores when they are null (or, annotations, empty)."""
_ROLE_KEYS = {
    "assistant": frozenset({"tool_calls", "reasoning", "reasoning_content", *_ASSISTANT_NULLS}),
    "tool": frozenset({"tool_call_id"}),
}
_COMMON_KEYS = frozenset({"role", "content", "name"})


class UnsupportedChat(ValueError):
    """A chat whose rendering by vLLM is not mirrored here: the caller routes it by estimate."""


def _str_or_none(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UnsupportedChat(what)
    return value


def _flag(value: Any, what: str) -> bool | None:
    """A strict boolean or None (pydantic would also take ``"true"``, 1 and the like; such a chat is left out)."""
    if value is not None and not isinstance(value, bool):
        raise UnsupportedChat(what)
    return value


def generation_prompt(body: dict[str, Any]) -> bool:
    """The request's ``add_generation_prompt`` (default true), after checking it asks nothing unmirrored."""
    if any(body.get(field) is not None for field in _UNSUPPORTED_FIELDS) or body.get("chat_template_kwargs"):
        raise UnsupportedChat("a request field vLLM renders its own way")
    if (
        body.get("continue_final_message", False) is not False
        or body.get("add_special_tokens", False) is not False
    ):
        raise UnsupportedChat("continue_final_message or add_special_tokens")
    add = body.get("add_generation_prompt", True)
    if not isinstance(add, bool):
        raise UnsupportedChat("add_generation_prompt")
    return add


def _tool(tool: Any) -> dict[str, Any]:
    """One tool as ``ChatCompletionToolsParam.model_dump()`` gives it."""
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise UnsupportedChat("a tool that is not a function")
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UnsupportedChat("a tool without a function name")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise UnsupportedChat("tool parameters")
    dumped: dict[str, Any] = {
        "name": function["name"],
        "description": _str_or_none(function.get("description"), "tool description"),
        "parameters": parameters,
    }
    strict = _flag(function.get("strict"), "strict")
    tool_defer = _flag(tool.get("defer_loading"), "defer_loading")
    defer = _flag(function.get("defer_loading"), "defer_loading")
    if defer is None:  # the tool's flag is copied to its function's when that one is unset
        defer = tool_defer
    if strict is not None:
        dumped["strict"] = strict
    if defer is not None:
        dumped["defer_loading"] = defer
    out: dict[str, Any] = {"type": "function", "function": dumped}
    if tool_defer is not None:
        out["defer_loading"] = tool_defer
    return out


def template_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The ``tools`` the template is given (None when the request has none)."""
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list) or not tools:  # vLLM refuses an empty list
        raise UnsupportedChat("tools")
    return [_tool(tool) for tool in tools]


def _arguments(raw: str) -> dict[str, Any]:
    """A call's ``arguments`` as vLLM gives them to the template: the JSON object, else ``{}``."""
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _tool_call(call: Any) -> dict[str, Any]:
    """One assistant tool call, in the request model's key order (other keys after, as sent), its arguments parsed."""
    if (
        not isinstance(call, dict)
        or not {"id", "type", "function"} <= set(call)
        or call["type"] != "function"
    ):
        raise UnsupportedChat("a tool call outside the plain function shape")
    function = call["function"]
    if (
        not isinstance(call["id"], str)
        or not isinstance(function, dict)
        or set(function) != {"name", "arguments"}
    ):
        raise UnsupportedChat("a tool call's id or function")
    if not isinstance(function["name"], str) or not isinstance(function["arguments"], str):
        raise UnsupportedChat("a tool call's name or arguments")
    parsed = {"arguments": _arguments(function["arguments"]), "name": function["name"]}
    extra = {k: v for k, v in call.items() if k not in ("id", "function", "type")}  # a client's "index", say
    return {"id": call["id"], "function": parsed, "type": "function", **extra}


def _text_parts(role: str, content: Any) -> list[dict[str, Any]]:
    """The message's content as text parts (a string is one part); anything but text parts raises."""
    if content is None:
        if role != "assistant":
            raise UnsupportedChat("content missing outside an assistant message")
        return []
    if isinstance(content, str):
        parts: list[dict[str, Any]] = [{"type": "text", "text": content}]
    elif isinstance(content, list):
        parts = content
    else:
        raise UnsupportedChat("content")
    for part in parts:
        if (
            not isinstance(part, dict)
            or part.get("type") != "text"
            or not isinstance(part.get("text"), str)
            or not set(part) <= _TEXT_PART_KEYS
        ):
            raise UnsupportedChat("a content part that is not text")
    if role == "system":
        parts = _without_billing_header(parts)
    return parts


def _without_billing_header(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Claude Code's attribution line dropped from system texts (vLLM's ``_strip_claude_code_billing_header``)."""
    out = []
    for part in parts:
        text = part["text"]
        if not text.startswith(_BILLING_HEADER):
            out.append(part)
            continue
        rest = text.partition("\n")[2]
        if rest:
            out.append({**part, "text": rest})
    return out


def _content(parts: list[dict[str, Any]], content_format: ContentFormat) -> str | list[dict[str, Any]]:
    if content_format == "string":  # an empty text is dropped, not joined
        return "\n".join(part["text"] for part in parts if part["text"])
    return [
        {"type": "text", "text": part["text"], **{k: v for k, v in part.items() if k not in ("type", "text")}}
        for part in parts
    ]


def _message(message: Any, content_format: ContentFormat) -> dict[str, Any]:
    """One message as vLLM's ``_parse_chat_message_content`` and ``_postprocess_messages`` rebuild it."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise UnsupportedChat("a message without a role")
    role = message["role"]
    if role == "function":
        raise UnsupportedChat("a legacy function result")
    if not set(message) <= _COMMON_KEYS | _ROLE_KEYS.get(role, frozenset()):
        raise UnsupportedChat("a message key vLLM treats its own way")
    if role != "assistant" and "content" not in message:
        raise UnsupportedChat("a message without content")
    name = _str_or_none(message.get("name"), "name")
    if "name" in message and name is None:
        raise UnsupportedChat("a null name")
    out: dict[str, Any] = {
        "role": role,
        "content": _content(_text_parts(role, message.get("content")), content_format),
    }
    if role == "assistant":
        if any(message.get(key) not in (None, []) for key in _ASSISTANT_NULLS):
            raise UnsupportedChat("a refusal, function call or audio")
        calls = message.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise UnsupportedChat("tool_calls")
            if calls:  # vLLM drops an empty list
                out["tool_calls"] = [_tool_call(call) for call in calls]
        reasoning = _str_or_none(message.get("reasoning"), "reasoning")
        if reasoning is None:  # the request model renames the deprecated field
            reasoning = _str_or_none(message.get("reasoning_content"), "reasoning_content")
        if reasoning is not None:
            out["reasoning"] = out["reasoning_content"] = reasoning
    elif role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise UnsupportedChat("a tool result without a tool_call_id")
        out["tool_call_id"] = message["tool_call_id"]
        if isinstance(out["content"], list):  # tool results' text parts are joined for every template
            out["content"] = "\n".join(part["text"] for part in out["content"])
    if name is not None:
        out["name"] = name
    if role == "developer":
        out["tools"] = None
    return out


def _as_system(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Developer messages as system ones, all system messages merged first (``safe_apply_chat_template``)."""
    converted = []
    for message in conversation:
        if message["role"] == "developer":
            message = {k: v for k, v in message.items() if k != "tools"}
            message["role"] = "system"
        converted.append(message)
    system_texts: list[str] = []
    others = []
    merge = False
    for i, message in enumerate(converted):
        if message["role"] != "system":
            others.append(message)
            continue
        merge = merge or i > 0 or bool(system_texts)
        content = message.get("content", "")
        if isinstance(content, list):
            content = "\n".join(part["text"] for part in content if "text" in part)
        if content:
            system_texts.append(content)
    if not merge:
        return converted
    return [{"role": "system", "content": "\n\n".join(system_texts)}, *others]


def template_messages(
    messages: Any, content_format: ContentFormat, *, supports_developer: bool
) -> list[dict[str, Any]]:
    """The ``messages`` the template is given, for a template of ``content_format``."""
    if not isinstance(messages, list):
        raise UnsupportedChat("messages")
    conversation = [_message(message, content_format) for message in messages]
    if not supports_developer and any(m["role"] == "developer" for m in conversation):
        conversation = _as_system(conversation)
    return conversation
