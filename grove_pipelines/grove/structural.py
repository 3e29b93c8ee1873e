"""What the API server does to a custom object before it validates it: prune nulls, fill CRD defaults.

Kubernetes drops ``null`` values of fields that are not ``nullable`` and then applies the
``default`` of every schema property that is absent from an object that is present (structural
defaulting). Both happen before the schema, the CEL rules and the admission webhooks see the object,
so ``headlessServiceConfig: {}`` is admitted (its ``publishNotReadyAddresses`` defaults to true).
"""

from __future__ import annotations

import copy
from typing import Any

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


def _walk(value: Any, schema: dict[str, Any]) -> Any:
    """A normalized copy of ``value``: kept keys in their order, then defaults in schema order."""
    if isinstance(value, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            out: dict[str, Any] = {}
            for key, child in value.items():
                node = _schema(properties.get(key))
                if child is None and not node.get("nullable"):
                    continue
                out[key] = _walk(child, node) if key in properties else _copy(child)
            for key, node in properties.items():
                node = _schema(node)
                if key not in out and "default" in node:
                    out[key] = _walk(node["default"], node)
            return out
        if isinstance(schema.get("additionalProperties"), dict):
            return {key: _walk(child, schema["additionalProperties"]) for key, child in value.items()}
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_walk(item, schema["items"]) for item in value]
    return _copy(value)


def normalize(obj: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` with nulls pruned and the schema's defaults filled in (``status`` untouched).

    Built in one pass, as the API server builds it from JSON: a subtree that appears twice in ``obj``
    (a YAML alias) becomes two independent copies.
    """
    out: dict[str, Any] = _walk({k: v for k, v in obj.items() if k != "status"}, schema)
    if obj.get("status") is not None:
        out["status"] = _copy(obj["status"])
    return out
