"""What the API server does to a custom object before it validates it: prune nulls, fill CRD defaults.

Kubernetes drops ``null`` values of fields that are not ``nullable`` and then applies the
``default`` of every schema property that is absent from an object that is present (structural
defaulting). Both happen before the schema, the CEL rules and the admission webhooks see the object,
so ``headlessServiceConfig: {}`` is admitted (its ``publishNotReadyAddresses`` defaults to true).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from grove_pipelines.grove.identity_cache import IdentityCache

__all__ = ["normalize"]


_SCALARS = (str, int, float, bool, type(None))


def _schema(node: Any) -> dict[str, Any]:
    return node if isinstance(node, dict) else {}


def _copy(value: Any) -> Any:
    """A deep copy of a subtree no schema describes (plain JSON is rebuilt; anything else deep-copied)."""
    if isinstance(value, dict):
        return {key: _copy(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value if isinstance(value, _SCALARS) else copy.deepcopy(value)


Walk = Callable[[Any], Any]
"""A normalized copy of a value under one schema node."""


def _compile(schema: dict[str, Any]) -> Walk:
    """The walk of one schema node, its children compiled once: kept keys in their order, then
    defaults in schema order."""
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    items = schema.get("items")
    mapping: Walk | None = None
    if isinstance(properties, dict):
        nodes = {key: _schema(node) for key, node in properties.items()}
        children = {key: (_compile(node), bool(node.get("nullable"))) for key, node in nodes.items()}
        defaults = [
            (key, children[key][0], node["default"]) for key, node in nodes.items() if "default" in node
        ]

        def mapping(value: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, child in value.items():
                known = children.get(key)
                if child is None and not (known is not None and known[1]):
                    continue
                out[key] = _copy(child) if known is None else known[0](child)
            for key, walk, default in defaults:
                if key not in out:
                    out[key] = walk(default)
            return out

    elif isinstance(extra, dict):
        walk_extra = _compile(extra)

        def mapping(value: dict[str, Any]) -> dict[str, Any]:
            return {key: walk_extra(child) for key, child in value.items()}

    walk_item = _compile(items) if isinstance(items, dict) else None

    def walk(value: Any) -> Any:
        if mapping is not None and isinstance(value, dict):
            return mapping(value)
        if walk_item is not None and isinstance(value, list):
            return [walk_item(item) for item in value]
        return _copy(value)

    return walk


_compiled: IdentityCache[Walk] = IdentityCache()


def normalize(obj: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` with nulls pruned and the schema's defaults filled in (``status`` untouched).

    Built in one pass, as the API server builds it from JSON: a subtree that appears twice in ``obj``
    (a YAML alias) becomes two independent copies. The walk of ``schema`` is compiled once per schema object.
    """
    walk = _compiled.get(schema, None, lambda: _compile(schema))
    out: dict[str, Any] = walk({k: v for k, v in obj.items() if k != "status"})
    if obj.get("status") is not None:
        out["status"] = _copy(obj["status"])
    return out
