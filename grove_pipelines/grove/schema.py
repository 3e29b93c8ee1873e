"""Validation of an object against a CRD's ``openAPIV3Schema``, as the API server does it.

A pure function of (object, CRD dict), so the same check runs on the vendored CRDs and on a CRD read
from a live cluster. On top of plain JSON Schema it applies what Kubernetes adds:

* strict field validation: unknown fields are errors (``additionalProperties: false`` wherever a
  schema lists ``properties`` and does not say ``x-kubernetes-preserve-unknown-fields``);
* ``x-kubernetes-int-or-string``; ``int32``/``int64`` formats; unique keys of ``x-kubernetes-list-type:
  map`` lists and unique items of ``set`` lists;
* the CEL rules of ``x-kubernetes-validations`` (the subset in ``grove_pipelines.grove.cel``), on create.

Every problem is an ``AdmissionError`` with rule ``schema.<keyword>`` and the field path, e.g.
``spec.template.cliques[2].spec.roleName``. The prepared validator is cached per CRD object, with its
compiled yes/no check (``grove_pipelines.grove.schema_check``): jsonschema only runs, for the exact
problems, on an object that check does not vouch for.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from jsonschema import Draft7Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

from grove_pipelines.errors import AdmissionError, ManifestError
from grove_pipelines.grove.cel import UnsupportedRule, evaluate
from grove_pipelines.grove.identity_cache import IdentityCache
from grove_pipelines.grove.schema_check import Check, LeafKeyword, compile_check

__all__ = ["crd_schema", "format_path", "validate_object"]

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_formats = FormatChecker(formats=())
for _name, (_lo, _hi) in _INT_RANGES.items():
    _formats.checks(_name)(lambda value, lo=_lo, hi=_hi: not isinstance(value, int) or lo <= value <= hi)


def _list_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not isinstance(instance, list):
        return
    seen: dict[tuple[Any, ...], int] = {}
    for index, item in enumerate(instance):
        if not isinstance(item, dict):
            continue
        key = tuple(repr(item.get(k)) for k in keys)
        if key in seen:
            shown = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
            yield ValidationError(
                f"duplicate entry ({shown}), first at index {seen[key]}",
                path=[index],
                validator="list-map-keys",
            )
        else:
            seen[key] = index


_UPDATE: ContextVar[bool] = ContextVar("_UPDATE", default=False)


def _cel(
    validator: Any, rules: list[dict[str, Any]], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    for rule in rules:
        try:
            ok = evaluate(rule["rule"], instance, update=_UPDATE.get())
        except UnsupportedRule:
            continue  # outside the evaluated subset: the API server will judge it
        if not ok:
            field = [p for p in re.split(r"[.\[\]]", rule.get("fieldPath", "")) if p]
            yield ValidationError(
                rule.get("message") or f"failed rule: {rule['rule']}", path=field, validator="cel"
            )


_CUSTOM: dict[str, LeafKeyword] = {
    "x-kubernetes-list-map-keys": _list_map_keys,
    "x-kubernetes-validations": _cel,
}
_Validator = validators.extend(Draft7Validator, _CUSTOM)


def _prepare(node: Any) -> Any:
    """A Kubernetes structural schema turned into strict JSON Schema (in place, on a copy)."""
    if isinstance(node, list):
        for item in node:
            _prepare(item)
        return node
    if not isinstance(node, dict):
        return node
    node.pop("description", None)
    node.pop("default", None)
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-list-type") == "set":
        node["uniqueItems"] = True
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node.setdefault("additionalProperties", False)
    for key, value in node.items():
        if key == "properties":
            for child in value.values():
                _prepare(child)
        elif key != "x-kubernetes-validations":
            _prepare(value)
    return node


def crd_schema(crd: dict[str, Any], api_version: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the CRD version that ``api_version`` names."""
    group = crd.get("spec", {}).get("group")
    for version in crd.get("spec", {}).get("versions", []):
        if f"{group}/{version.get('name')}" == api_version:
            return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]
    kind = crd.get("spec", {}).get("names", {}).get("kind", "?")
    raise ManifestError(f"the {kind} CRD has no version {api_version!r}")


_cache: IdentityCache[tuple[Any, Check]] = IdentityCache()


def _validator(crd: dict[str, Any], api_version: str) -> tuple[Any, Check]:
    """The jsonschema validator of the CRD version and its compiled check (built once per CRD object)."""
    return _cache.get(crd, api_version, lambda: _build(crd, api_version))


def _build(crd: dict[str, Any], api_version: str) -> tuple[Any, Check]:
    schema = _prepare(copy.deepcopy(crd_schema(crd, api_version)))
    schema.setdefault("properties", {}).pop("status", None)  # status is not validated on create
    validator = _Validator(schema, format_checker=_formats)
    check = compile_check(
        schema,
        validating=_Validator.VALIDATORS,
        leaves=_CUSTOM,
        formats=_formats.conforms,
        known_formats=_formats.checkers,
    )
    return validator, check


def format_path(parts: Any) -> str:
    """``["spec", "template", "cliques", 2, "spec"]`` → ``spec.template.cliques[2].spec``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(object)"


def _problems(error: ValidationError) -> Iterator[AdmissionError]:
    path = list(error.absolute_path)
    if error.validator == "required":
        match = re.match(r"^'(.+)' is a required property$", error.message)
        name = match.group(1) if match else "?"
        yield AdmissionError(
            "required field is missing", rule="schema.required", path=format_path([*path, name])
        )
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        for name in error.instance:
            if name not in known:
                yield AdmissionError(
                    "unknown field", rule="schema.unknown-field", path=format_path([*path, name])
                )
    elif error.validator == "anyOf" and error.schema.get("x-kubernetes-int-or-string"):
        yield AdmissionError(
            f"must be an integer or a string, got {error.instance!r}",
            rule="schema.type",
            path=format_path(path),
        )
    else:
        message = error.message if len(error.message) < 200 else error.message[:197] + "..."
        yield AdmissionError(message, rule=f"schema.{error.validator}", path=format_path(path))


def validate_object(
    obj: dict[str, Any], crd: dict[str, Any], *, update: bool = False
) -> list[AdmissionError]:
    """Every schema problem of ``obj`` (empty when the API server's schema check would accept it).

    ``update`` evaluates the CEL rules as on an update (``oldSelf`` present). The caller normalizes
    first (``grove_pipelines.grove.structural``) when it wants the API server's null pruning and defaults.
    """
    validator, check = _validator(crd, str(obj.get("apiVersion", "")))
    body = {k: v for k, v in obj.items() if k != "status"}
    token = _UPDATE.set(update)
    try:
        if check(body):
            return []
        problems = [p for error in validator.iter_errors(body) for p in _problems(error)]
    finally:
        _UPDATE.reset(token)
    return sorted(problems, key=lambda p: p.path)
