"""Server-side apply for the double: field sets (FieldsV1), ownership, conflicts, merge.

A simplified model of the API server's structured-merge-diff: maps merge key by key; lists follow the
schema. For a custom resource the CRD's ``x-kubernetes-list-type`` decides, as in kube-apiserver: ``map``
lists are keyed by their ``x-kubernetes-list-map-keys`` (``k:{"name":...}``), ``set`` lists by value
(``v:...``), and every other list is atomic — Grove's ``cliques`` is a map keyed by name, its
``podCliqueScalingGroups`` is atomic (owned and replaced as one field). Built-in kinds (no schema here)
keep the approximation their Go types give: a list whose items all have a ``name`` is keyed by it.
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


Schema = dict[str, Any] | None
"""A structural schema node of a CRD, or ``None`` for built-in kinds (name-keyed approximation)."""


def _child(schema: Schema, key: str) -> Schema:
    if schema is None:
        return None
    properties = schema.get("properties")
    if isinstance(properties, dict) and key in properties:
        return properties[key]  # type: ignore[no-any-return]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def _list_keys(value: Any, schema: Schema) -> list[str] | None:
    """The keys of a map list (``[]`` for a set list), or ``None`` when the list is atomic."""
    if not isinstance(value, list) or not value:
        return None
    if schema is None:
        return ["name"] if all(isinstance(i, dict) and "name" in i for i in value) else None
    kind = schema.get("x-kubernetes-list-type")
    if kind == "map":
        return list(schema.get("x-kubernetes-list-map-keys") or [])
    return [] if kind == "set" else None


def _is_map_list(value: Any, schema: Schema = None) -> bool:
    return _list_keys(value, schema) is not None


def _key(item: Any, keys: list[str]) -> str:
    if not keys:
        return "v:" + json.dumps(item, separators=(",", ":"), sort_keys=True)
    return "k:" + json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"))


def leaves(obj: Any, prefix: Path = (), schema: Schema = None) -> set[Path]:
    """Every owned path of an applied configuration (the field set, flattened)."""
    out: set[Path] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not prefix and k in ("apiVersion", "kind", "status"):
                continue
            if prefix == ("f:metadata",) and k in _UNTRACKED_META:
                continue
            sub = (*prefix, f"f:{k}")
            child = _child(schema, k) if not (prefix == () and k == "metadata") else None
            inner = leaves(v, sub, child) if isinstance(v, dict) and v or _is_map_list(v, child) else set()
            if not prefix and k == "metadata" and not inner:
                continue  # only untracked keys (name, namespace): nothing owned, as in kube-apiserver
            out |= inner or {sub}
    else:
        keys = _list_keys(obj, schema)
        items = schema.get("items") if isinstance(schema, dict) else None
        for item in obj if keys is not None else []:
            sub = (*prefix, _key(item, keys))  # type: ignore[arg-type]
            out |= {(*sub, ".")} | (leaves(item, sub, items) if isinstance(item, dict) else set())
    return out


def fields_of(obj: dict[str, Any], schema: Schema = None) -> set[Path]:
    """The field set an applier of ``obj`` owns (``schema``: the CRD's, for a custom resource)."""
    return leaves(obj, (), schema)


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
    if part.startswith("v:") and isinstance(node, list):
        want = json.loads(part[2:])
        return next((i for i in node if i == want), None)
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
    live: dict[str, Any], applied: dict[str, Any], owners: dict[str, set[Path]], schema: Schema = None
) -> list[tuple[str, Path]]:
    """(manager, path) for every field another manager owns that ``applied`` sets to a different value."""
    mine = fields_of(applied, schema)
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


def _merge(live: Any, applied: Any, schema: Schema = None, top: bool = False) -> Any:
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for k, v in applied.items():
            out[k] = _merge(live.get(k), v, None if top and k == "metadata" else _child(schema, k))
        return out
    keys = _list_keys(applied, schema)
    if keys is not None and isinstance(live, list):
        items = schema.get("items") if isinstance(schema, dict) else None
        by_key = {_key(i, keys): i for i in live if keys == [] or isinstance(i, dict)}
        merged = [_merge(by_key.get(_key(i, keys)), i, items) for i in applied]
        mine = {_key(i, keys) for i in applied}
        return merged + [i for k, i in by_key.items() if k not in mine]
    return copy.deepcopy(applied)


def merge_apply(
    live: dict[str, Any], applied: dict[str, Any], dropped: set[Path], schema: Schema = None
) -> dict[str, Any]:
    """The new object: ``dropped`` (fields only this manager owned and no longer applies) removed, then merged."""
    out = copy.deepcopy(live)
    for path in sorted(dropped, key=len, reverse=True):
        _remove(out, path)
    return _merge(out, {k: v for k, v in applied.items() if k != "status"}, schema, top=True)  # type: ignore[no-any-return]
