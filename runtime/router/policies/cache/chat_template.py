"""A model's chat template, rendered as Hugging Face transformers renders it, without transformers.

vLLM renders a chat request with its tokenizer's ``apply_chat_template`` (transformers), so the
router must produce the same text to get the same tokens. This is that renderer's environment:
jinja2's immutable sandbox with ``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols``
extension, a ``{% generation %}`` block that renders its body, the ``tojson`` filter that does not
escape HTML, and the globals ``raise_exception`` and ``strftime_now``; the template sees
``messages``, ``tools``, ``documents``, ``add_generation_prompt`` and the named special tokens
(``bos_token``, ``eos_token``, ...). ``tests/runtime/router/test_tokenizer_files.py`` checks it
against transformers' own rendering. It also knows the two things vLLM reads from a template's text
before rendering: the content format (``content_format.py``) and whether it names the ``developer``
role (else vLLM renders developer messages as system ones).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runtime.router.policies.cache.content_format import ContentFormat, detect_content_format

__all__ = ["ChatTemplate"]


class _Generation(Extension):
    """``{% generation %}...{% endgeneration %}`` (transformers marks assistant text with it): its body, as is."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares it so

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Macro) -> str:
        return str(caller())


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class ChatTemplate:
    """One compiled template and the special tokens it is rendered with."""

    def __init__(self, source: str, special_tokens: dict[str, str]) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self._template = env.from_string(source)
        self.special_tokens = dict(special_tokens)
        #: How vLLM's ``auto`` content format hands this template message content.
        self.content_format: ContentFormat = detect_content_format(env.parse(source))
        #: Whether vLLM passes ``developer`` messages as they are (else as system ones): its test, verbatim.
        self.supports_developer = '"developer"' in source or "'developer'" in source

    def render(
        self,
        messages: list[Any],
        *,
        add_generation_prompt: bool = True,
        tools: list[Any] | None = None,
    ) -> str:
        """The prompt text for ``messages`` (a template's own ``raise_exception`` raises ``TemplateError``)."""
        return self._template.render(
            messages=messages,
            tools=tools,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **self.special_tokens,
        )
