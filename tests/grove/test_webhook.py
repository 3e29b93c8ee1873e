"""Each Grove webhook rule (grove-api.md §0–§1.7) has a manifest that breaks it, with rule and path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.defaulting import apply_defaults
from grove_pipelines.grove.operator_config import OperatorConfig
from grove_pipelines.grove.topology_bindings import bindings_from
from grove_pipelines.grove.webhook.admit import admit, check_podcliqueset
from tests.grove.conftest import clique, clique_index

Mutation = Callable[[dict[str, Any]], None]


def _spec(pcs: dict[str, Any], name: str) -> dict[str, Any]:
    return clique(pcs, name)["spec"]


def _set(path: str, value: Any) -> Mutation:
    def mutate(pcs: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = pcs
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return mutate


def _rename(old: str, new: str) -> Mutation:
    def mutate(pcs: dict[str, Any]) -> None:
        clique(pcs, old)["name"] = new

    return mutate


def _group(**fields: Any) -> Mutation:
    def mutate(pcs: dict[str, Any]) -> None:
        pcs["spec"]["template"]["podCliqueScalingGroups"][0].update(fields)

    return mutate


def _add_group(group: dict[str, Any]) -> Mutation:
    def mutate(pcs: dict[str, Any]) -> None:
        pcs["spec"]["template"]["podCliqueScalingGroups"].append(group)

    return mutate


def _clique_spec(name: str, **fields: Any) -> Mutation:
    def mutate(pcs: dict[str, Any]) -> None:
        _spec(pcs, name).update(fields)

    return mutate


def _pod(name: str, **fields: Any) -> Mutation:
    def mutate(pcs: dict[str, Any]) -> None:
        _spec(pcs, name)["podSpec"].update(fields)

    return mutate


def _env(name: str, *env: dict[str, str]) -> Mutation:
    def mutate(pcs: dict[str, Any]) -> None:
        _spec(pcs, name)["podSpec"]["containers"][0]["env"] = list(env)

    return mutate


FRONTEND = "spec.template.cliques[0]"
RETRIEVE = "spec.template.cliques[1]"
EMBED = "spec.template.cliques[5]"
GROUP = "spec.template.podCliqueScalingGroups[0]"
SCHEDULER = "spec.template.cliques.spec.podSpec.schedulerName"

CASES: list[tuple[str, Mutation, str, str]] = [
    ("metadata-name", _set("metadata.name", "Not_A_Name"), "metadata-name", "metadata.name"),
    ("pcs replicas negative", _set("spec.replicas", -1), "pcs-replicas", "spec.replicas"),
    ("no cliques", _set("spec.template.cliques", []), "cliques-required", "spec.template.cliques"),
    ("clique name", _rename("retrieve", "Retrieve"), "clique-name", f"{RETRIEVE}.name"),
    ("suffix", _rename("retrieve", "end"), "clique-name-suffix", f"{RETRIEVE}.name"),
    ("budget", _set("metadata.name", "p" * 40), "name-budget", f"{FRONTEND}.name"),
    ("fqn", lambda p: (_set("metadata.name", "p" * 32)(p), _group(replicas=10**12)(p)), "clique-fqn-length",
     "spec.template.cliques[3].name"),
    ("hostname", lambda p: (_set("metadata.name", "p" * 37)(p), _clique_spec("retrieve", replicas=10**20)(p)),
     "hostname-length", f"{RETRIEVE}.name"),
    ("empty role", _clique_spec("retrieve", roleName=""), "role-name", f"{RETRIEVE}.spec.roleName"),
    ("role unique", _clique_spec("retrieve", roleName="frontend"), "role-name-unique", f"{RETRIEVE}.spec.roleName"),
    ("replicas", _clique_spec("retrieve", replicas=0), "clique-replicas", f"{RETRIEVE}.spec.replicas"),
    ("min 0", _clique_spec("retrieve", minAvailable=0), "min-available", f"{RETRIEVE}.spec.minAvailable"),
    ("min > replicas", _clique_spec("retrieve", minAvailable=2), "min-available", f"{RETRIEVE}.spec.minAvailable"),
    ("hpa min < minAvailable", _clique_spec("embed", autoScalingConfig={"minReplicas": 1, "maxReplicas": 3},
                                            replicas=2, minAvailable=2),
     "autoscaling-bounds", f"{EMBED}.spec.autoScalingConfig.minReplicas"),
    ("hpa max < replicas", _clique_spec("embed", autoScalingConfig={"maxReplicas": 1}, replicas=2),
     "autoscaling-bounds", f"{EMBED}.spec.autoScalingConfig.maxReplicas"),
    ("schedulers", _pod("retrieve", schedulerName="kai-scheduler"), "scheduler-name", SCHEDULER),
    ("scheduler not enabled", lambda p: [c["spec"]["podSpec"].update(schedulerName="volcano")
                                         for c in p["spec"]["template"]["cliques"]], "scheduler-enabled", SCHEDULER),
    ("kai queue", lambda p: [c["spec"]["podSpec"].update(schedulerName="kai-scheduler")
                             for c in p["spec"]["template"]["cliques"]], "kai-queue", "spec"),
    ("after unknown", _clique_spec("retrieve", startsAfter=["nope"]), "starts-after-unknown", f"{RETRIEVE}.spec.startsAfter[0]"),
    ("after self", _clique_spec("retrieve", startsAfter=["retrieve"]), "starts-after-self", f"{RETRIEVE}.spec.startsAfter[0]"),
    ("after twice", _clique_spec("retrieve", startsAfter=["embed", "embed"]), "starts-after-duplicate",
     f"{RETRIEVE}.spec.startsAfter[1]"),
    ("after cycle", _clique_spec("embed", startsAfter=["frontend"]), "starts-after-cycle", "spec.template.cliques"),
    ("group member unknown", _group(cliqueNames=["chat-dl", "ghost"]), "scaling-group-members", f"{GROUP}.cliqueNames[1]"),
    ("group member twice", _add_group({"name": "other", "cliqueNames": ["chat-dw"], "replicas": 1, "minAvailable": 1}),
     "scaling-group-members", "spec.template.podCliqueScalingGroups[1].cliqueNames[0]"),
    ("group name", _group(name="Chat_D"), "scaling-group-name", f"{GROUP}.name"),
    ("group defined twice", _add_group({"name": "chat-d", "cliqueNames": ["embed"]}), "scaling-group-name",
     "spec.template.podCliqueScalingGroups[1].name"),
    ("group replicas", _group(replicas=0), "scaling-group-replicas", f"{GROUP}.replicas"),
    ("group min", _group(minAvailable=3), "min-available", f"{GROUP}.minAvailable"),
    ("group scale bounds", _group(scaleConfig={"minReplicas": 0, "maxReplicas": 2}), "autoscaling-bounds",
     f"{GROUP}.scaleConfig.minReplicas"),
    ("member autoscales", _clique_spec("chat-dw", autoScalingConfig={"maxReplicas": 3}), "scaling-group-autoscaling",
     "spec.template.cliques[4].spec.autoScalingConfig"),
    ("env name", _env("retrieve", {"name": "1BAD", "value": "x"}), "env-name",
     f"{RETRIEVE}.spec.podSpec.containers[0].env[0].name"),
    ("env twice", _env("retrieve", {"name": "A", "value": "x"}, {"name": "A", "value": "y"}), "env-name-unique",
     f"{RETRIEVE}.spec.podSpec.containers[0].env[1].name"),
    ("nodeName", _pod("retrieve", nodeName="n1"), "pod-spec-forbidden", f"{RETRIEVE}.spec.podSpec.nodeName"),
    ("spread", _pod("retrieve", topologySpreadConstraints=[{"maxSkew": 1}]), "pod-spec-forbidden",
     f"{RETRIEVE}.spec.podSpec.topologySpreadConstraints"),
    ("delay 0", _set("spec.template.terminationDelay", "0s"), "termination-delay", "spec.template.terminationDelay"),
    ("delay text", _set("spec.template.terminationDelay", "soon"), "termination-delay", "spec.template.terminationDelay"),
    ("topology off", _set("spec.template.topologyConstraint", {"topologyName": "a", "pack": {"required": "rack"}}),
     "topology-disabled", "spec.template.topologyConstraint"),
]  # fmt: skip
PROJECT_RULES = {"clique-name-suffix", "clique-fqn-length", "hostname-length", "role-name"}
TAS = GroveCluster(
    config=OperatorConfig.model_validate({"topologyAwareScheduling": {"enabled": True}}),
    bindings=bindings_from(
        [
            {
                "kind": "ClusterTopologyBinding",
                "metadata": {"name": "a"},
                "spec": {"levels": [{"domain": "zone"}, {"domain": "rack"}, {"domain": "host"}]},
            }
        ]
    ),
)
TAS_CASES: list[tuple[str, Mutation, str, str]] = [
    ("topology names", lambda p: (_set("spec.template.topologyConstraint", {"topologyName": "a", "pack": {"required": "rack"}})(p),
                                  _group(topologyConstraint={"topologyName": "b", "pack": {"required": "host"}})(p)),
     "topology-name", "spec.template.topologyConstraint.topologyName"),
    ("topology name missing", _group(topologyConstraint={"pack": {"required": "host"}}), "topology-name",
     f"{GROUP}.topologyConstraint.topologyName"),
    ("topology binding", _set("spec.template.topologyConstraint", {"topologyName": "b", "pack": {"required": "rack"}}),
     "topology-binding", "spec.template.topologyConstraint.topologyName"),
    ("topology domain", _set("spec.template.topologyConstraint", {"topologyName": "a", "pack": {"required": "numa"}}),
     "topology-domain", "spec.template.topologyConstraint.pack.required"),
    ("topology hierarchy", lambda p: (_set("spec.template.topologyConstraint", {"topologyName": "a", "pack": {"required": "host"}})(p),
                                      _group(topologyConstraint={"pack": {"required": "zone"}})(p)),
     "topology-hierarchy", "spec.template.topologyConstraint"),
]  # fmt: skip


def test_the_compiled_manifest_is_admitted(pcs: dict[str, Any]) -> None:
    assert check_podcliqueset(pcs, strict=True) == []


@pytest.mark.parametrize(("case", "mutate", "rule", "path"), CASES, ids=[c[0] for c in CASES])
def test_rule_rejects(pcs: dict[str, Any], case: str, mutate: Mutation, rule: str, path: str) -> None:
    mutate(pcs)
    result = admit(pcs)
    found = [(p.rule, p.path) for p in (result.warnings if rule in PROJECT_RULES else result.items)]
    assert (rule, path) in found, [str(p) for p in result.items + result.warnings]
    if rule in PROJECT_RULES:  # this project's stricter rule: refused only for the compiler's output
        assert (rule, path) in [(p.rule, p.path) for p in check_podcliqueset(pcs, strict=True)]


@pytest.mark.parametrize(("case", "mutate", "rule", "path"), TAS_CASES, ids=[c[0] for c in TAS_CASES])
def test_topology_rule_rejects_with_tas_on(
    pcs: dict[str, Any], case: str, mutate: Mutation, rule: str, path: str
) -> None:
    mutate(pcs)
    problems = check_podcliqueset(pcs, cluster=TAS)
    assert (rule, path) in [(p.rule, p.path) for p in problems], [str(p) for p in problems]


def test_replicas_zero_is_grove_valid(pcs: dict[str, Any]) -> None:
    pcs["spec"]["replicas"] = 0
    assert check_podcliqueset(pcs, strict=True) == []


def test_every_problem_is_reported_not_only_the_first(pcs: dict[str, Any]) -> None:
    pcs["spec"]["replicas"] = -1
    _spec(pcs, "retrieve")["minAvailable"] = 5
    _spec(pcs, "embed")["roleName"] = "frontend"
    rules = {p.rule for p in check_podcliqueset(pcs)}
    assert {"pcs-replicas", "min-available", "role-name-unique"} <= rules


def test_strict_mode_wants_explicit_fields_and_no_grove_env(pcs: dict[str, Any]) -> None:
    del _spec(pcs, "retrieve")["minAvailable"]
    _spec(pcs, "frontend")["podSpec"]["containers"][0]["env"].append({"name": "GROVE_PCS_NAME", "value": "x"})
    found = {(p.rule, p.path) for p in check_podcliqueset(pcs, strict=True)}
    assert ("explicit-fields", f"{RETRIEVE}.spec.minAvailable") in found
    assert any(rule == "env-name-reserved" for rule, _ in found)
    assert not any(p.rule == "env-name-reserved" for p in check_podcliqueset(pcs))


def test_malformed_input_does_not_crash_the_rules() -> None:
    for obj in ({}, {"spec": []}, {"spec": {"template": {"cliques": [None, 3, {"spec": "x"}]}}}):
        assert check_podcliqueset(obj)  # problems, no exception


def test_defaulting_follows_grove_including_its_trap() -> None:
    obj = {"metadata": {"name": "x"}, "spec": {"template": {"cliques": [
        {"name": "a", "spec": {"roleName": "a", "replicas": 3, "podSpec": {"containers": []}}},
        {"name": "b", "spec": {"roleName": "b", "podSpec": {"containers": []}}},
    ], "podCliqueScalingGroups": [{"name": "g", "cliqueNames": ["a"], "scaleConfig": {"maxReplicas": 2}}]}}}  # fmt: skip
    out = apply_defaults(obj)
    assert out is not obj and "namespace" not in obj["metadata"]
    assert out["metadata"]["namespace"] == "default" and out["spec"]["replicas"] == 0
    template = out["spec"]["template"]
    assert (template["terminationDelay"], template["cliqueStartupType"]) == (
        "4h",
        "CliqueStartupTypeAnyOrder",
    )
    a, b = (c["spec"] for c in template["cliques"])
    assert (a["replicas"], a["minAvailable"]) == (3, 3)
    assert (b["replicas"], b["minAvailable"]) == (1, 0)  # minAvailable from the submitted (missing) replicas
    assert template["podCliqueScalingGroups"][0]["scaleConfig"]["minReplicas"] == 1
    rules = {p.rule for p in check_podcliqueset(out)}
    assert rules == {"min-available"}  # replicas 0 is Grove-valid; the omitted clique replicas is the trap


def test_index_helper_matches_fixture_layout(pcs: dict[str, Any]) -> None:
    assert clique_index(pcs, "embed") == 5 and clique_index(pcs, "chat-dw") == 4
