"""Validation of the built-in kinds deploy writes, as kube-apiserver's ``pkg/apis/*/validation`` does it.

Only what a pipeline's objects can get wrong: Service names (DNS-1035), ports (needed unless headless,
1-65535, unique names, a known protocol), Role rules (verbs, apiGroups), RoleBinding ``roleRef`` (needed,
a Role or ClusterRole, and immutable) and subjects. Returns Kubernetes ``causes``; empty means valid.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["validate_builtin"]

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
Cause = dict[str, str]


def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> Cause:
    return {"reason": reason, "field": field, "message": message}


def _service(obj: dict[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    name = obj["metadata"].get("name", "")
    if not _DNS_1035.match(name):
        out.append(_cause("metadata.name", f'Invalid value: "{name}": a DNS-1035 label must consist of lower case '
                          "alphanumeric characters or '-', start with an alphabetic character"))  # fmt: skip
    spec = obj.get("spec") or {}
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName"
    if not ports and not headless:
        out.append(_cause("spec.ports", "Required value", "FieldValueRequired"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            out.append(
                _cause(f"spec.ports[{i}].port", f"Invalid value: {number!r}: must be between 1 and 65535")
            )
        if port.get("protocol", "TCP") not in _PROTOCOLS:
            out.append(_cause(f"spec.ports[{i}].protocol", f'Unsupported value: "{port.get("protocol")}"',
                              "FieldValueNotSupported"))  # fmt: skip
        if len(ports) > 1 and not port.get("name"):
            out.append(_cause(f"spec.ports[{i}].name", "Required value", "FieldValueRequired"))
        if port.get("name") in names:
            out.append(
                _cause(
                    f"spec.ports[{i}].name", f'Duplicate value: "{port.get("name")}"', "FieldValueDuplicate"
                )
            )
        names.add(str(port.get("name")))
    return out


def _role(obj: dict[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    for i, rule in enumerate(obj.get("rules") or []):
        if not rule.get("verbs"):
            out.append(_cause(f"rules[{i}].verbs", "Required value: verbs must contain at least one value",
                              "FieldValueRequired"))  # fmt: skip
        if rule.get("nonResourceURLs"):
            out.append(_cause(f"rules[{i}].nonResourceURLs", "Invalid value: namespaced rules cannot apply to "
                              "non-resource URLs"))  # fmt: skip
        elif "apiGroups" not in rule or rule.get("apiGroups") is None:
            out.append(_cause(f"rules[{i}].apiGroups", "Required value: resource rules must supply at least one "
                              "api group", "FieldValueRequired"))  # fmt: skip
    return out


def _role_binding(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out: list[Cause] = []
    ref = obj.get("roleRef") or {}
    if not ref:
        return [_cause("roleRef", "Required value", "FieldValueRequired")]
    if ref.get("kind") not in ("Role", "ClusterRole"):
        out.append(
            _cause("roleRef.kind", f'Unsupported value: "{ref.get("kind")}"', "FieldValueNotSupported")
        )
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        out.append(
            _cause(
                "roleRef.apiGroup", f'Unsupported value: "{ref.get("apiGroup")}"', "FieldValueNotSupported"
            )
        )
    if not ref.get("name"):
        out.append(_cause("roleRef.name", "Required value", "FieldValueRequired"))
    if old is not None and (old.get("roleRef") or {}) != ref:
        out.append(_cause("roleRef", "Invalid value: cannot change roleRef"))
    for i, subject in enumerate(obj.get("subjects") or []):
        if subject.get("kind") not in ("ServiceAccount", "User", "Group"):
            out.append(_cause(f"subjects[{i}].kind", f'Unsupported value: "{subject.get("kind")}"',
                              "FieldValueNotSupported"))  # fmt: skip
        if not subject.get("name"):
            out.append(_cause(f"subjects[{i}].name", "Required value", "FieldValueRequired"))
    return out


def validate_builtin(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """``causes`` for a built-in object; empty when kube-apiserver's validation accepts it."""
    if kind == "Service":
        return _service(obj)
    if kind == "Role":
        return _role(obj)
    if kind == "RoleBinding":
        return _role_binding(obj, old)
    return []
