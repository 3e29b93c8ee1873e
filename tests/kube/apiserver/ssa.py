"""Server-side apply for the double: field sets (FieldsV1), ownership, conflicts, merge.

A simplified model of the API server's structured-merge-diff: maps merge key by key; a list whose items
are all objects with a ``name`` is a map keyed by name (``k:{"name":...}``), every other list is atomic.
That covers what grove-pipelines applies (Grove's cliques and scaling groups are ``listType=map`` keyed
by name; containers, env and ports are keyed by name). Enough to be honest about conflicts and removals.
"""

from __future__ import annotations

import copy
import json
from typing import Any

__all__ = ["Path", "conflicts", "fields_of", "leaves", "merge_apply", "pretty", "to_fieldsv1", "value_at"]

Path = tuple[str, ...]
_UNTRACKED_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
}


def _is_map_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) and "name" in i for i in value)


def _key(item: dict[str, Any]) -> str:
    return "k:" + json.dumps({"name": item["name"]}, separators=(",", ":"))


def leaves(obj: Any, prefix: Path = ()) -> set[Path]:
    """Every owned path of an applied configuration (the field set, flattened)."""
    out: set[Path] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not prefix and k in ("apiVersion", "kind", "status"):
                continue
            if prefix == ("f:metadata",) and k in _UNTRACKED_META:
                continue
            sub = (*prefix, f"f:{k}")
            inner = leaves(v, sub) if isinstance(v, dict) and v or _is_map_list(v) else set()
            out |= inner or {sub}
    elif _is_map_list(obj):
        for item in obj:
            sub = (*prefix, _key(item))
            out |= {(*sub, ".")} | leaves(item, sub)
    return out


def fields_of(obj: dict[str, Any]) -> set[Path]:
    """The field set an applier of ``obj`` owns."""
    return leaves(obj)


def to_fieldsv1(paths: set[Path]) -> dict[str, Any]:
    """The nested ``fieldsV1`` form the API returns in ``metadata.managedFields``."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(part, {})
    return root


def from_fieldsv1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    """Inverse of :func:`to_fieldsv1`."""
    out: set[Path] = set()
    for k, v in tree.items():
        sub = (*prefix, k)
        out |= from_fieldsv1(v, sub) if v else {sub}
    return out


def _step(node: Any, part: str) -> Any:
    if part == ".":
        return node
    if part.startswith("f:"):
        return node.get(part[2:]) if isinstance(node, dict) else None
    if part.startswith("k:") and isinstance(node, list):
        want = json.loads(part[2:])
        return next(
            (i for i in node if isinstance(i, dict) and all(i.get(a) == b for a, b in want.items())), None
        )
    return None


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    """The value a path points at, or a sentinel when absent."""
    node = obj
    for part in path:
        if node is None:
            return _MISSING
        node = _step(node, part)
    return _MISSING if node is None else node


def pretty(path: Path) -> str:
    """``.spec.template.cliques[name="decode"].spec.replicas``, as the API server writes it."""
    out = ""
    for part in path:
        if part.startswith("f:"):
            out += "." + part[2:]
        elif part.startswith("k:"):
            out += "[" + ",".join(f"{a}={json.dumps(b)}" for a, b in json.loads(part[2:]).items()) + "]"
    return out


def conflicts(
    live: dict[str, Any], applied: dict[str, Any], owners: dict[str, set[Path]]
) -> list[tuple[str, Path]]:
    """(manager, path) for every field another manager owns that ``applied`` sets to a different value."""
    mine = fields_of(applied)
    out = []
    for manager, owned in owners.items():
        for path in sorted(owned & mine):
            if path[-1] != "." and value_at(live, path) != value_at(applied, path):
                out.append((manager, path))
    return out


def _remove(obj: Any, path: Path) -> None:
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    last = path[-1]
    if last == "." and len(path) > 1:
        container = value_at(obj, path[:-2]) if len(path) > 2 else obj
        if isinstance(container, list):
            container[:] = [i for i in container if i is not parent]
        return
    if isinstance(parent, dict) and last.startswith("f:"):
        parent.pop(last[2:], None)


def _merge(live: Any, applied: Any) -> Any:
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for k, v in applied.items():
            out[k] = _merge(live.get(k), v)
        return out
    if _is_map_list(applied) and isinstance(live, list):
        by_name = {i.get("name"): i for i in live if isinstance(i, dict)}
        merged = [_merge(by_name.get(i["name"]), i) for i in applied]
        names = {i["name"] for i in applied}
        return merged + [i for i in live if isinstance(i, dict) and i.get("name") not in names]
    return copy.deepcopy(applied)


def merge_apply(live: dict[str, Any], applied: dict[str, Any], dropped: set[Path]) -> dict[str, Any]:
    """The new object: ``dropped`` (fields only this manager owned and no longer applies) removed, then merged."""
    out = copy.deepcopy(live)
    for path in sorted(dropped, key=len, reverse=True):
        _remove(out, path)
    return _merge(out, {k: v for k, v in applied.items() if k != "status"})
