"""Managed fields (``metadata.managedFields[].fieldsV1``): reading them and cutting objects down to them.

``diff`` compares only what grove-pipelines manages, the way server-side apply sees an object: the
fields our manager owns, not what Grove's webhooks, controllers or other managers wrote.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Tree", "fields_tree", "managed_tree", "merge_trees", "prune"]

Tree = dict[str, Any]


def merge_trees(*trees: Tree) -> Tree:
    """The union of field trees."""
    out: Tree = {}
    for tree in trees:
        for key, sub in tree.items():
            out[key] = merge_trees(out.get(key) or {}, sub or {})
    return out


def managed_tree(obj: dict[str, Any] | None, manager: str) -> Tree:
    """The fields ``manager`` owns through apply in ``obj`` (empty for None)."""
    entries = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return merge_trees(
        *(
            e.get("fieldsV1") or {}
            for e in entries
            if e.get("manager") == manager and e.get("operation") == "Apply" and not e.get("subresource")
        )
    )


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) and "name" in i for i in value)


def fields_tree(obj: Any) -> Tree:
    """The field tree an applied configuration claims (lists of named items are keyed by name)."""
    tree: Tree = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            tree[f"f:{key}"] = fields_tree(value)
    elif _named_list(obj):
        for item in obj:
            tree["k:" + json.dumps({"name": item["name"]}, separators=(",", ":"))] = fields_tree(item)
    return tree


def _matches(item: Any, key: str) -> bool:
    want = json.loads(key[2:])
    return isinstance(item, dict) and all(item.get(k) == v for k, v in want.items())


def prune(value: Any, tree: Tree) -> Any:
    """``value`` cut down to the fields in ``tree`` (a leaf keeps the whole value)."""
    keys = [k for k in tree if k != "."]
    if not keys:
        return value
    if isinstance(value, dict):
        return {k[2:]: prune(value[k[2:]], tree[k]) for k in keys if k.startswith("f:") and k[2:] in value}
    if isinstance(value, list):
        item_keys = [k for k in keys if k.startswith("k:")]
        return [prune(item, tree[k]) for item in value for k in item_keys if _matches(item, k)]
    return value
