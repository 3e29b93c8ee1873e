"""Validating custom resources against the real Grove CRDs, the way a structural-schema API server does.

The CRDs are the unchanged Grove YAMLs (``../shared/grove-crds`` from the repo root, or a copy vendored
under ``grove_pipelines/grove/crds``). Unknown fields are errors under ``fieldValidation=Strict`` (what
grove-pipelines and kubectl send) and pruned otherwise. CEL rules are not evaluated: this is a double.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["crd_dir", "load_crds", "validate"]

ROOT = Path(__file__).resolve().parents[3]


def crd_dir() -> Path:
    """Where the Grove CRD YAMLs are: the package's vendored copy if any, else the shared folder."""
    vendored = ROOT / "grove_pipelines" / "grove" / "crds"
    if vendored.is_dir() and any(vendored.glob("grove.io_podcliquesets.yaml")):
        return vendored
    return ROOT.parent / "shared" / "grove-crds"


@functools.lru_cache(maxsize=1)
def _parsed_crds() -> tuple[dict[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(yaml.load(p.read_text(), Loader=loader) for p in sorted(crd_dir().glob("*.yaml")))


def load_crds() -> list[dict[str, Any]]:
    """The five Grove CRD objects, as an API server stores them (fresh copies: callers may change them)."""
    return copy.deepcopy(list(_parsed_crds()))


def _structural(schema: Any) -> Any:
    """OpenAPI v3 (Kubernetes flavour) -> JSON Schema: closed objects, nullable, int-or-string."""
    if isinstance(schema, list):
        return [_structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _structural(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


_validators: dict[tuple[str, str, str], jsonschema.Draft7Validator] = {}


def _validator(crd: dict[str, Any], version: str, raw: dict[str, Any]) -> jsonschema.Draft7Validator:
    """One compiled validator per CRD object state (uid and resourceVersion change when the CRD does)."""
    meta = crd["metadata"]
    key = (meta.get("uid", meta["name"]), meta.get("resourceVersion", ""), version)
    if key not in _validators:
        _validators[key] = _compile(raw)
    return _validators[key]


def _compile(raw: dict[str, Any]) -> jsonschema.Draft7Validator:
    schema = _structural(raw)
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    schema["properties"]["apiVersion"] = {"type": "string"}
    schema["properties"]["kind"] = {"type": "string"}
    return jsonschema.Draft7Validator(schema)


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate(crd: dict[str, Any], version: str, obj: dict[str, Any], *, strict: bool) -> list[dict[str, str]]:
    """Kubernetes ``causes`` (``field``, ``message``, ``reason``) for every schema error; empty when valid.

    Without ``strict``, unknown fields are pruned from ``obj`` in place instead of reported.
    """
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    raw = served["schema"]["openAPIV3Schema"]
    validator = _validator(crd, version, raw)
    causes = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        where = _path(error)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            for name in extra:
                field = f"{where}.{name}" if where else name
                if not strict:
                    error.instance.pop(name, None)
                    continue
                causes.append(
                    {"reason": "FieldValueInvalid", "field": field, "message": "field not declared in schema"}
                )
        elif error.validator == "required":
            missing = error.message.split("'")[1]
            causes.append(
                {
                    "reason": "FieldValueRequired",
                    "field": f"{where}.{missing}".lstrip("."),
                    "message": "Required value",
                }
            )
        else:
            causes.append(
                {"reason": "FieldValueInvalid", "field": where, "message": f"Invalid value: {error.message}"}
            )
    return causes
