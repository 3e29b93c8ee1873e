"""Tolerant reads of a manifest's untyped fields: the webhook rules run on anyone's YAML, so a field of
the wrong type reads as empty (the CRD schema reports the type itself)."""

from __future__ import annotations

from typing import Any

__all__ = ["as_dict", "as_int", "as_list", "most_replicas"]


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def most_replicas(spec: dict[str, Any], key: str = "replicas", scale_key: str = "autoScalingConfig") -> int:
    """The most replicas a clique or group can reach: its ``replicas`` or its autoscaler's maximum."""
    count = as_int(spec.get(key)) or 1
    high = as_int(as_dict(spec.get(scale_key)).get("maxReplicas")) or 0
    return max(count, high, 1)
