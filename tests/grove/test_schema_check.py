"""The compiled schema check is sound: whenever it vouches for an object, jsonschema finds no error.

The reference is jsonschema itself (the CRD's prepared validator, or a plain Draft 7 validator for the
keyword table), run on the same instance; the check must also vouch for every valid manifest, or the
fast path would never be taken.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft7Validator, FormatChecker

from grove_pipelines import yamlio
from grove_pipelines.grove import schema
from grove_pipelines.grove.schema_check import compile_check
from grove_pipelines.grove.validate import load_crds, prepare
from tests.grove.test_validate_fuzz import BASES, mutated

CRDS = load_crds()
PCS_CRD = CRDS[("grove.io", "PodCliqueSet")]
GOLDENS = sorted((Path(__file__).resolve().parents[2] / "pipelines").glob("*.yaml"))


def _verdicts(doc: dict[str, Any], *, update: bool = False) -> tuple[bool, bool]:
    """(the check vouches, jsonschema finds nothing) for ``doc`` as ``validate_object`` sees it."""
    crd = CRDS[(doc["apiVersion"].rpartition("/")[0], doc["kind"])]
    body = prepare(doc, crd, defaults=False)
    body.pop("status", None)
    validator, check = schema._validator(crd, doc["apiVersion"])
    token = schema._UPDATE.set(update)
    try:
        return check(body), not any(True for _ in validator.iter_errors(body))
    finally:
        schema._UPDATE.reset(token)


def _grove_documents() -> list[dict[str, Any]]:
    found = [copy.deepcopy(doc) for doc in BASES]
    for path in GOLDENS:
        found += [
            doc
            for doc in yamlio.load_all_file(path)
            if str(doc.get("apiVersion", "")).startswith("grove.io/")
        ]
    return found


def test_the_check_vouches_for_every_valid_manifest() -> None:
    docs = _grove_documents()
    assert len(docs) > len(BASES)  # the goldens hold PodCliqueSets too
    for doc in docs:
        for update in (False, True):
            vouched, valid = _verdicts(doc, update=update)
            assert vouched == valid, (doc["metadata"]["name"], update)


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_check_never_vouches_for_an_object_jsonschema_rejects(case: tuple[Any, Any]) -> None:
    _, doc = case
    if (
        not isinstance(doc, dict)
        or doc.get("apiVersion") != "grove.io/v1alpha1"
        or doc.get("kind") != "PodCliqueSet"
    ):
        return
    for update in (False, True):
        vouched, valid = _verdicts(doc, update=update)
        assert valid or not vouched


_SCHEMAS: list[tuple[dict[str, Any], list[Any]]] = [
    ({"type": "integer"}, [1, 1.0, 1.5, True, "1", None]),
    ({"type": "number", "minimum": 2, "maximum": 5}, [1, 2, 5, 5.5, True, "3"]),
    ({"type": ["string", "null"]}, ["a", None, 0]),
    ({"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^a"}, ["a", "ab", "abcd", "ba", 7]),
    ({"enum": ["a", "b"]}, ["a", "c", 1, None]),
    ({"format": "int32", "type": "integer"}, [2**31 - 1, 2**31, -(2**31) - 1, True]),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        [{"a": "x"}, {}, {"a": 1}, []],
    ),
    ({"properties": {"a": {}}, "additionalProperties": False}, [{"a": 1}, {"b": 1}, "not an object"]),
    ({"additionalProperties": {"type": "integer"}}, [{"x": 1}, {"x": "1"}, {}]),
    ({"minProperties": 1, "maxProperties": 1}, [{}, {"a": 1}, {"a": 1, "b": 2}]),
    ({"items": {"type": "string"}, "minItems": 1, "maxItems": 2}, [[], ["a"], ["a", 1], ["a", "b", "c"]]),
    ({"uniqueItems": True}, [["a", "b"], ["a", "a"], "ab"]),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, [1, "1", 1.5, None]),
    ({"allOf": [{"minimum": 1}, {"maximum": 2}]}, [0, 1, 3]),
    ({"uniqueItems": True}, [[1, True], [1, 1.0], [[1], [1]], [(1,), [1]], [1, "a"]]),
    ({"enum": [1, "a"]}, [1, True, "a"]),
    ({"not": {"type": "string"}}, [1, "a"]),
    ({"oneOf": [{"type": "integer"}]}, [1]),
    ({"$ref": "#/definitions/x", "definitions": {"x": {}}}, [1]),
    ({"items": [{"type": "string"}]}, [["a"], [1]]),
]
_EXACT = 14  # the first schemas are decided exactly; the rest only ever defer to jsonschema


@pytest.mark.parametrize("index", range(len(_SCHEMAS)))
def test_each_keyword_against_jsonschema(index: int) -> None:
    raw, instances = _SCHEMAS[index]
    reference = Draft7Validator(raw, format_checker=schema._formats)
    check = compile_check(
        raw,
        validating=Draft7Validator.VALIDATORS,
        leaves={},
        formats=schema._formats.conforms,
        known_formats=schema._formats.checkers,
    )
    for instance in instances:
        valid = reference.is_valid(instance)
        if index < _EXACT:
            assert check(instance) == valid, (raw, instance)
        else:
            assert not check(instance), (raw, instance)


def test_custom_keywords_are_called_as_jsonschema_calls_them() -> None:
    keys = {"x-kubernetes-list-map-keys": ["name"], "type": "array"}
    check = compile_check(
        keys,
        validating={*Draft7Validator.VALIDATORS, "x-kubernetes-list-map-keys"},
        leaves={"x-kubernetes-list-map-keys": schema._list_map_keys},
        formats=FormatChecker().conforms,
        known_formats=(),
    )
    assert check([{"name": "a"}, {"name": "b"}])
    assert not check([{"name": "a"}, {"name": "a"}])
