"""CRD schema validation as the API server does it: strict fields, int-or-string, list maps, CEL."""

from __future__ import annotations

from typing import Any

import pytest

from grove_pipelines.errors import ManifestError
from grove_pipelines.grove.cel import UnsupportedRule, evaluate
from grove_pipelines.grove.schema import crd_schema, format_path, validate_object
from grove_pipelines.grove.validate import load_crds

CRD = load_crds()[("grove.io", "PodCliqueSet")]


def _found(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.rule, p.path) for p in validate_object(obj, CRD)]


def test_compiled_manifest_matches_the_crd(pcs: dict[str, Any]) -> None:
    assert validate_object(pcs, CRD) == []


def test_unknown_fields_are_rejected_where_they_are(pcs: dict[str, Any]) -> None:
    pcs["spec"]["template"]["cliques"][1]["spec"]["podSpec"]["containers"][0]["imagePullPolicyy"] = "Always"
    pcs["spec"]["template"]["schedulerName"] = "kai-scheduler"  # gone from the API since alpha.5
    assert _found(pcs) == [
        ("schema.unknown-field", "spec.template.cliques[1].spec.podSpec.containers[0].imagePullPolicyy"),
        ("schema.unknown-field", "spec.template.schedulerName"),
    ]


def test_missing_required_field_names_the_field(pcs: dict[str, Any]) -> None:
    del pcs["spec"]["template"]["cliques"][2]["spec"]["roleName"]
    assert _found(pcs) == [("schema.required", "spec.template.cliques[2].spec.roleName")]


def test_types_enums_and_int32(pcs: dict[str, Any]) -> None:
    pcs["spec"]["replicas"] = "1"
    pcs["spec"]["template"]["cliqueStartupType"] = "Explicit"
    pcs["spec"]["template"]["cliques"][0]["spec"]["podSpec"]["containers"][0]["ports"][0]["containerPort"] = (
        2**31
    )
    assert set(_found(pcs)) == {
        ("schema.type", "spec.replicas"),
        ("schema.format", "spec.template.cliques[0].spec.podSpec.containers[0].ports[0].containerPort"),
        ("schema.enum", "spec.template.cliqueStartupType"),
    }


def test_int_or_string(pcs: dict[str, Any]) -> None:
    resources = pcs["spec"]["template"]["cliques"][0]["spec"]["podSpec"]["containers"][0]["resources"]
    resources["requests"]["cpu"] = 2
    assert _found(pcs) == []
    resources["requests"]["cpu"] = [2]
    assert _found(pcs) == [
        ("schema.type", "spec.template.cliques[0].spec.podSpec.containers[0].resources.requests.cpu")
    ]


def test_list_map_keys_must_be_unique(pcs: dict[str, Any]) -> None:
    cliques = pcs["spec"]["template"]["cliques"]
    cliques.append(dict(cliques[1]))
    assert _found(pcs) == [("schema.list-map-keys", f"spec.template.cliques[{len(cliques) - 1}]")]


@pytest.mark.parametrize(
    ("constraint", "path", "message"),
    [
        ({"topologyName": "t"}, "spec.template.topologyConstraint.pack", "must specify pack"),
        (
            {"topologyName": "t", "pack": {}},
            "spec.template.topologyConstraint.pack",
            "at least one of required",
        ),
        ({"packDomain": "rack"}, "spec.template.topologyConstraint.packDomain", "deprecated"),
    ],
)
def test_cel_rules_of_topology_constraints(
    pcs: dict[str, Any], constraint: dict[str, Any], path: str, message: str
) -> None:
    pcs["spec"]["template"]["topologyConstraint"] = constraint
    problems = validate_object(pcs, CRD)
    assert [(p.rule, p.path) for p in problems] == [("schema.cel", path)]
    assert message in problems[0].detail


def test_packdomain_on_a_clique_is_refused_on_create(pcs: dict[str, Any]) -> None:
    pcs["spec"]["template"]["cliques"][1]["topologyConstraint"] = {"packDomain": "rack"}
    assert ("schema.cel", "spec.template.cliques") in _found(pcs)


def test_status_is_ignored_and_validator_is_cached(pcs: dict[str, Any]) -> None:
    pcs["status"] = {"anything": True}
    assert validate_object(pcs, CRD) == []
    from grove_pipelines.grove import schema

    assert any(entry[0] is CRD for entry in schema._cache.values())


def test_unknown_api_version_is_a_manifest_error(pcs: dict[str, Any]) -> None:
    pcs["apiVersion"] = "grove.io/v1"
    with pytest.raises(ManifestError, match="no version 'grove.io/v1'"):
        validate_object(pcs, CRD)
    assert crd_schema(CRD, "grove.io/v1alpha1")["type"] == "object"


def test_format_path() -> None:
    assert format_path(["spec", "template", "cliques", 2, "spec"]) == "spec.template.cliques[2].spec"
    assert format_path([]) == "(object)"


def test_cel_subset() -> None:
    assert evaluate("has(self.a.b) && !has(self.c)", {"a": {"b": 1}})
    assert not evaluate("self.items.all(i, has(i.x))", {"items": [{"x": 1}, {}]})
    assert evaluate("oldSelf.hasValue() || true", {})
    with pytest.raises(UnsupportedRule):
        evaluate("self.x.size() > 2", {"x": []})
