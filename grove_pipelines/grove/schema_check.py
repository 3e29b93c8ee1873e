"""A prepared CRD schema compiled once into a yes/no check: the fast path in front of jsonschema.

jsonschema walks every schema node of a 1,000-clique PodCliqueSet through its generic machinery (a new
validator object per node). Compiled into nested closures, the same question — "would jsonschema report
nothing?" — is answered many times faster. The answer is sound, not exact: ``True`` means jsonschema
reports no error (each implemented keyword does what jsonschema's Draft 7 keyword does); ``False`` means
"maybe not", and the caller asks jsonschema for the exact problems. A node using a validating keyword
this module does not implement answers ``False``, so a schema it does not know only costs speed.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

__all__ = ["Check", "LeafKeyword", "compile_check"]

Check = Callable[[Any], bool]
"""``True`` only when the instance certainly passes."""

LeafKeyword = Callable[[Any, Any, Any, dict[str, Any]], Iterator[Any]]
"""A jsonschema keyword function that never descends: ``(validator, value, instance, schema)`` → errors."""


def _yes(instance: Any) -> bool:
    return True


def _no(instance: Any) -> bool:
    return False


def _is_number(instance: Any) -> bool:
    return not isinstance(instance, bool) and isinstance(instance, numbers.Number)


def _is_integer(instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())


def _within(size: int, least: int | None, most: int | None) -> bool:
    """``minLength``/``maxLength``, ``minItems``/``maxItems``, ``minProperties``/``maxProperties``."""
    return (least is None or size >= least) and (most is None or size <= most)


_TYPES: dict[str, Check] = {
    "array": lambda instance: isinstance(instance, list),
    "boolean": lambda instance: isinstance(instance, bool),
    "integer": _is_integer,
    "null": lambda instance: instance is None,
    "number": _is_number,
    "object": lambda instance: isinstance(instance, dict),
    "string": lambda instance: isinstance(instance, str),
}
"""Draft 7's type checker, as jsonschema defines it."""

_NATIVE = frozenset(
    {
        "type", "properties", "additionalProperties", "required", "minProperties", "maxProperties",
        "items", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern",
        "minimum", "maximum", "enum", "anyOf", "allOf", "format",
    }
)  # fmt: skip


class _Compiler:
    def __init__(
        self,
        validating: Collection[str],
        leaves: Mapping[str, LeafKeyword],
        formats: Callable[[Any, str], bool],
        known_formats: Collection[str],
    ) -> None:
        self.validating = validating
        self.leaves = leaves
        self.formats = formats
        self.known_formats = known_formats

    def compile(self, node: Any) -> Check:
        if node is True:
            return _yes
        if not isinstance(node, dict):
            return _no  # False, or not a schema at all: jsonschema decides
        keywords = [k for k in node if k in self.validating]
        if any(k not in _NATIVE and k not in self.leaves for k in keywords):
            return _no  # $ref, oneOf, not, patternProperties, ...: not implemented here
        kind = self._type(node)
        parts = [
            part
            for part in (
                self._object(node),
                self._array(node),
                self._string(node),
                self._number(node),
                *self._any_type(node),
            )
            if part is not None
        ]
        if kind is _no:
            return _no
        if not parts:
            return kind
        if kind is _yes and len(parts) == 1:
            return parts[0]

        def check(instance: Any) -> bool:
            if not kind(instance):
                return False
            for part in parts:
                if not part(instance):
                    return False
            return True

        return check

    def _type(self, node: dict[str, Any]) -> Check:
        if "type" not in node:
            return _yes
        names = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not names or any(not isinstance(n, str) or n not in _TYPES for n in names):
            return _no
        if len(names) == 1:
            return _TYPES[names[0]]
        predicates = [_TYPES[n] for n in names]
        return lambda instance: any(p(instance) for p in predicates)

    def _object(self, node: dict[str, Any]) -> Check | None:
        props = node.get("properties")
        extra = node.get("additionalProperties", True)
        required = node.get("required", [])
        least, most = node.get("minProperties"), node.get("maxProperties")
        if props is None and extra is True and not required and least is None and most is None:
            return None
        if not isinstance(props, dict | None) or not isinstance(required, list):
            return _no
        children = {name: self.compile(child) for name, child in (props or {}).items()}
        others = None if extra is True else self.compile(extra)
        wanted = tuple(required)

        def check(instance: Any) -> bool:
            if not isinstance(instance, dict):
                return True
            for key, value in instance.items():
                child = children.get(key)
                if child is None:
                    if others is not None and not others(value):
                        return False
                elif not child(value):
                    return False
            for key in wanted:
                if key not in instance:
                    return False
            return _within(len(instance), least, most)

        return check

    def _array(self, node: dict[str, Any]) -> Check | None:
        items = node.get("items", True)
        least, most = node.get("minItems"), node.get("maxItems")
        unique = node.get("uniqueItems", False)
        if items is True and least is None and most is None and not unique:
            return None
        item = self.compile(items) if not isinstance(items, list) else _no  # tuple form: jsonschema decides

        def check(instance: Any) -> bool:
            if not isinstance(instance, list):
                return True
            if not _within(len(instance), least, most):
                return False
            if unique and not (
                all(isinstance(i, str) for i in instance) and len(set(instance)) == len(instance)
            ):
                return False  # only plain strings are vouched for; anything else goes to jsonschema
            for value in instance:
                if not item(value):
                    return False
            return True

        return check

    def _string(self, node: dict[str, Any]) -> Check | None:
        least, most, pattern = node.get("minLength"), node.get("maxLength"), node.get("pattern")
        if least is None and most is None and pattern is None:
            return None
        if pattern is not None and not isinstance(pattern, str):
            return _no
        search = re.compile(pattern).search if pattern is not None else None

        def check(instance: Any) -> bool:
            if not isinstance(instance, str):
                return True
            if not _within(len(instance), least, most):
                return False
            return search is None or search(instance) is not None

        return check

    def _number(self, node: dict[str, Any]) -> Check | None:
        least, most = node.get("minimum"), node.get("maximum")
        if least is None and most is None:
            return None

        def check(instance: Any) -> bool:
            if not _is_number(instance):
                return True
            if least is not None and instance < least:
                return False
            return most is None or instance <= most

        return check

    def _any_type(self, node: dict[str, Any]) -> Iterator[Check]:
        """The keywords that apply to an instance of any type."""
        if "enum" in node:
            choices = node["enum"]
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                yield _no
            else:
                allowed = frozenset(choices)
                yield lambda instance: isinstance(instance, str) and instance in allowed
        if "anyOf" in node:
            branches = [self.compile(branch) for branch in node["anyOf"]]
            yield lambda instance: any(branch(instance) for branch in branches)
        if "allOf" in node:
            parts = [self.compile(part) for part in node["allOf"]]
            yield lambda instance: all(part(instance) for part in parts)
        if node.get("format") in self.known_formats:
            name, conforms = node["format"], self.formats
            yield lambda instance: conforms(instance, name)
        for keyword, function in self.leaves.items():
            if keyword in node:
                yield _leaf(function, node[keyword], node)


def _leaf(function: LeafKeyword, value: Any, node: dict[str, Any]) -> Check:
    return lambda instance: next(iter(function(None, value, instance, node)), None) is None


def compile_check(
    schema: Any,
    *,
    validating: Collection[str],
    leaves: Mapping[str, LeafKeyword],
    formats: Callable[[Any, str], bool],
    known_formats: Collection[str],
) -> Check:
    """The check of ``schema`` (already prepared: strict, descriptions and defaults removed).

    ``validating``: every keyword the jsonschema validator acts on (the rest are annotations).
    ``leaves``: the custom keywords among them, called as jsonschema calls them. ``formats``: the
    format checker's ``conforms``, applied to the ``known_formats`` it checks.
    """
    return _Compiler(validating, leaves, formats, known_formats).compile(schema)
