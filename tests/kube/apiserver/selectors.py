"""Label and field selectors as the API server parses them (the subset kubectl and clients send)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["match_fields", "match_labels"]

_TERM = re.compile(
    r"^\s*(!?)([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    return [t for t in [*terms, current] if t.strip()]


def match_labels(selector: str | None, labels: dict[str, str] | None) -> bool:
    """True when ``labels`` satisfy every term of ``selector``; ValueError on a term we cannot parse."""
    labels = labels or {}
    for term in _split(selector or ""):
        m = _TERM.match(term)
        if not m:
            raise ValueError(f"unable to parse requirement: {term!r}")
        neg, key, op, value, set_op, values = m.groups()
        if op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif set_op:
            options = {v.strip() for v in values.split(",")}
            ok = (labels.get(key) in options) if set_op == "in" else (labels.get(key) not in options)
        else:
            ok = key in labels
        if ok == bool(neg):
            return False
    return True


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def match_fields(selector: str | None, obj: dict[str, Any]) -> bool:
    """``metadata.name=x,involvedObject.kind=Pod``: equality and inequality on dotted paths."""
    for term in _split(selector or ""):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if str(_dig(obj, key.strip())) == value.strip():
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if str(_dig(obj, key.strip()) or "") != value.strip():
                return False
    return True
