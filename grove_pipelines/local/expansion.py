"""``$(VAR)`` expansion in env values, ``command`` and ``args``, as the kubelet does it.

The rules are Kubernetes' (``third_party/forked/golang/expansion/expand.go`` and its table of cases in
``expand_test.go``): ``$(NAME)`` is replaced by the variable's value when it is defined and left as
written when not; ``$$`` is one literal ``$`` (so ``$$(NAME)`` is never expanded); a ``$`` before
anything else, an unterminated ``$(`` and shell syntax (``${X}``, ``$((X + 1))``) pass through. The
kubelet resolves a container's ``env`` in order, each value against the entries before it
(``pkg/kubelet/kubelet_pods.go :: makeEnvironmentVariables``), then expands ``command`` and ``args``
against the resolved list (``pkg/kubelet/container/helpers.go :: ExpandContainerCommandAndArgs``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["expand", "expand_all", "references", "resolve_env", "unresolved"]

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
"""Kubernetes' rule for env var names (``validation.IsEnvVarName``)."""


def expand(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with every defined ``$(NAME)`` replaced; see the module docstring for the rules."""
    return _expand(text, lambda name: variables.get(name, f"$({name})"))


def _expand(text: str, lookup: Callable[[str], str]) -> str:
    out: list[str] = []
    cursor, checkpoint, end = 0, 0, len(text)
    while cursor < end:
        if text[cursor] == "$" and cursor + 1 < end:
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _read_name(text[cursor + 1 :])
            out.append(lookup(read) if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _read_name(rest: str) -> tuple[str, bool, int]:
    """What follows a ``$``: (text to emit or the name, whether it is a name, bytes consumed)."""
    if rest[0] == "$":
        return "$", False, 1
    if rest[0] == "(":
        close = rest.find(")", 1)
        if close != -1:
            return rest[1:close], True, close + 1
        return "$(", False, 1
    return "$" + rest[0], False, 1


def expand_all(values: Sequence[str] | None, variables: Mapping[str, str]) -> list[str]:
    """Every item of ``command`` or ``args`` expanded."""
    return [expand(value, variables) for value in values or ()]


def resolve_env(
    entries: Iterable[Mapping[str, object]], field_value: Callable[[Mapping[str, object]], str]
) -> dict[str, str]:
    """A container's ``env`` list resolved in order: literals expanded against earlier entries.

    ``field_value`` answers a ``valueFrom`` (downward API and the like); it is not expanded, as in the
    kubelet. A later entry of the same name replaces the earlier one.
    """
    resolved: dict[str, str] = {}
    for entry in entries:
        name = str(entry["name"])
        source = entry.get("valueFrom")
        if isinstance(source, Mapping):
            resolved[name] = field_value(source)
        else:
            resolved[name] = expand(str(entry.get("value") or ""), resolved)
    return resolved


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to with ``$(NAME)`` (escaped ``$$(NAME)`` excluded).

    Only valid variable names count: ``$((X + 1))`` is read by the kubelet as a reference to
    ``(X + 1`` that no variable can define, so it always reaches the shell unchanged.
    """
    names: list[str] = []

    def record(name: str) -> str:
        if _ENV_NAME.fullmatch(name):
            names.append(name)
        return ""

    _expand(text, record)
    return names


def unresolved(values: Sequence[str], variables: Mapping[str, str]) -> list[str]:
    """The ``$(NAME)`` references in ``values`` that ``variables`` does not define (left as written)."""
    return [name for value in values for name in references(value) if name not in variables]
