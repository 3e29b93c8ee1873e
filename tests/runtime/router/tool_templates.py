"""A realistic tool-calling chat template and tools, for the tests and the bench of precise mode's agent chats.

The tiny model's own template ignores tools; agents' models render them. ``QWEN_STYLE`` is written
in the style of Qwen2.5's template (the tools as ``tojson`` lines in the system turn, each call as a
``<tool_call>`` with its arguments as JSON, tool results as ``<tool_response>`` user turns), over the
tiny model's special tokens.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["QWEN_STYLE", "TOOLS", "WEATHER", "model_with_template"]

QWEN_STYLE = """{%- if tools %}
    {{- '<|system|>\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions.\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each call, return <tool_call>{\\"name\\": ..., \\"arguments\\": ...}</tool_call><|end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|system|>\\n' + messages[0]['content'] + '<|end|>\\n' }}
    {%- else %}
        {{- '<|system|>\\nYou are a helpful assistant.<|end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|' + message.role + '|>\\n' + message.content + '<|end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|assistant|>' }}
        {%- if message.reasoning_content %}
            {{- '\\n<think>' + message.reasoning_content + '</think>' }}
        {%- endif %}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|user|>' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|assistant|>\\n' }}
{%- endif %}
"""

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city, naïve café 東京 <&>",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
TOOLS: list[dict[str, Any]] = [
    WEATHER,
    {"type": "function", "function": {"name": "now"}},  # no description, no parameters
    {"function": {"name": "grep", "description": "search", "strict": True, "extra": 1}, "x-vendor": "y"},
    {"type": "function", "function": {"name": "lazy", "parameters": {}}, "defer_loading": True},
]


def model_with_template(
    tiny_model: Path, out: Path, template: str | None, named: dict[str, str] | None = None
) -> Path:
    """The tiny model's files (its weights linked) in ``out``, with ``template`` as ``chat_template.jinja``
    and ``named`` ones in ``additional_chat_templates/``."""
    out.mkdir()
    for path in tiny_model.iterdir():
        if path.name == "model.safetensors":
            (out / path.name).symlink_to(path)
        elif path.is_file():
            shutil.copy(path, out / path.name)
    if template is not None:
        (out / "chat_template.jinja").write_text(template)
    for name, text in (named or {}).items():
        (out / "additional_chat_templates").mkdir(exist_ok=True)
        (out / "additional_chat_templates" / f"{name}.jinja").write_text(text)
    return out
