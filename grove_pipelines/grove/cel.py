"""The CEL subset the Grove CRDs use in ``x-kubernetes-validations``, evaluated by hand.

Supported: ``has(self.a.b)``, ``!``, ``&&``, ``||``, parentheses, ``true``/``false``, field access
(``self.a``, ``c.a``), ``list.all(x, expr)`` and ``oldSelf.hasValue()`` (false on create, true on
update). A rule outside this subset raises ``UnsupportedRule`` and the caller skips it — these
are the rules in grove-api.md §1.4, all of which are inside the subset.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["UnsupportedRule", "evaluate"]

_TOKEN = re.compile(r"\s*(\|\||&&|[!().,]|[A-Za-z_][A-Za-z0-9_]*)")
_MISSING = object()


class UnsupportedRule(ValueError):
    """The rule uses CEL this evaluator does not know."""


def _tokens(rule: str) -> list[str]:
    tokens, pos = [], 0
    rule = rule.strip()
    while pos < len(rule):
        match = _TOKEN.match(rule, pos)
        if match is None:
            raise UnsupportedRule(f"cannot parse CEL near {rule[pos : pos + 20]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], scope: dict[str, Any], *, old_present: bool = False) -> None:
        self.tokens, self.pos, self.scope, self.old_present = tokens, 0, scope, old_present

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise UnsupportedRule(f"expected {expected or 'a token'}, found {token!r}")
        self.pos += 1
        return token

    def parse_or(self) -> Any:
        value = self.parse_and()
        while self.peek() == "||":
            self.take()
            right = self.parse_and()
            value = bool(value) or bool(right)
        return value

    def parse_and(self) -> Any:
        value = self.parse_unary()
        while self.peek() == "&&":
            self.take()
            right = self.parse_unary()
            value = bool(value) and bool(right)
        return value

    def parse_unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not self.parse_unary()
        return self.parse_postfix()

    def parse_primary(self) -> Any:
        token = self.take()
        if token == "(":
            value = self.parse_or()
            self.take(")")
            return value
        if token in ("true", "false"):
            return token == "true"
        if token == "has":
            self.take("(")
            value = self.parse_postfix()
            self.take(")")
            return value is not _MISSING
        if token == "oldSelf":
            return {} if self.old_present else _MISSING
        if token in self.scope:
            return self.scope[token]
        raise UnsupportedRule(f"unknown name {token!r}")

    def parse_postfix(self) -> Any:
        value = self.parse_primary()
        while self.peek() == ".":
            self.take()
            name = self.take()
            if name == "hasValue":
                self.take("(")
                self.take(")")
                value = value is not _MISSING
            elif name == "all" and self.peek() == "(":
                value = self._all(value)
            else:
                value = value.get(name, _MISSING) if isinstance(value, dict) else _MISSING
        return value

    def _all(self, items: Any) -> bool:
        self.take("(")
        var = self.take()
        self.take(",")
        start, result = self.pos, True
        for item in items if isinstance(items, list) else []:
            self.pos = start
            inner = _Parser(self.tokens, {**self.scope, var: item}, old_present=self.old_present)
            inner.pos = start
            result = bool(inner.parse_or()) and result
            end = inner.pos
        if not isinstance(items, list) or not items:
            inner = _Parser(self.tokens, {**self.scope, var: {}}, old_present=self.old_present)
            inner.pos = start
            inner.parse_or()
            end = inner.pos
        self.pos = end
        self.take(")")
        return result


def evaluate(rule: str, self_value: Any, *, update: bool = False) -> bool:
    """Whether ``rule`` holds for ``self_value`` on create (``oldSelf`` absent) or on update."""
    parser = _Parser(_tokens(rule), {"self": self_value}, old_present=update)
    value = parser.parse_or()
    if parser.peek() is not None:
        raise UnsupportedRule(f"unexpected {parser.peek()!r}")
    return bool(value)
