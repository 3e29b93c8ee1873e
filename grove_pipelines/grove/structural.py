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


def _schema(node: Any) -> dict[str, Any]:
    return node if isinstance(node, dict) else {}


def _walk(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for key in [k for k, v in value.items() if v is None]:
                if not _schema(properties.get(key)).get("nullable"):
                    del value[key]
            for key, child in properties.items():
                child = _schema(child)
                if key not in value and "default" in child:
                    value[key] = copy.deepcopy(child["default"])
                if key in value:
                    value[key] = _walk(value[key], child)
        elif isinstance(schema.get("additionalProperties"), dict):
            for key in list(value):
                value[key] = _walk(value[key], schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_walk(item, schema["items"]) for item in value]
    return value


def normalize(obj: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` with nulls pruned and the schema's defaults filled in (``status`` untouched)."""
    out: dict[str, Any] = copy.deepcopy(obj)
    status = out.pop("status", None)
    _walk(out, schema)  # a mapping is filled in place
    if status is not None:
        out["status"] = status
    return out
