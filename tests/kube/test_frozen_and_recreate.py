"""Grove's frozen composition: refused with an explanation, recreated on --recreate --yes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from grove_pipelines.kube.frozen import ScaleTarget, frozen_changes, scale_targets
from tests.kube.apiserver import ApiServerDouble
from tests.kube.conftest import Cli

PCS = "grove.io/v1alpha1/podcliquesets"


def _pcs(**clique_spec: object) -> dict:
    spec = {
        "roleName": "decode",
        "replicas": 2,
        "minAvailable": 1,
        "podSpec": {"containers": []},
        **clique_spec,
    }
    return {
        "metadata": {"name": "rag"},
        "spec": {
            "replicas": 1,
            "template": {
                "cliqueStartupType": "CliqueStartupTypeExplicit",
                "cliques": [
                    {"name": "prefill", "spec": {"roleName": "prefill", "replicas": 1, "podSpec": {}}},
                    {"name": "decode", "spec": spec},
                ],
                "podCliqueScalingGroups": [
                    {"name": "g", "cliqueNames": ["prefill"], "replicas": 1, "minAvailable": 1}
                ],
            },
        },
    }


def test_frozen_changes_name_each_field() -> None:
    live = _pcs()
    assert frozen_changes(live, copy.deepcopy(live)) == []
    desired = _pcs(minAvailable=2, startsAfter=["prefill"], podSpec={"schedulerName": "kai-scheduler"})
    desired["spec"]["template"]["cliques"].append(
        {"name": "rerank", "spec": {"roleName": "rerank", "replicas": 1}}
    )
    desired["spec"]["template"]["podCliqueScalingGroups"][0]["minAvailable"] = 2
    assert frozen_changes(live, desired) == [
        "the PodCliqueSet: cliques cannot be added or removed (2 -> 3)",
        "clique 'decode': minAvailable is immutable (1 -> 2)",
        "clique 'decode': startsAfter is immutable (None -> ['prefill'])",
        "clique 'decode': schedulerName is immutable ('' -> 'kai-scheduler')",
        "clique 'rerank' is new: the set of cliques is fixed",
        "scaling group 'g': minAvailable is immutable (1 -> 2)",
    ]


def test_frozen_changes_cover_mnnvl_and_child_level_topology_and_sharing() -> None:
    """What the old composition check missed: Grove's update rules at every level."""
    live = _pcs()
    desired = copy.deepcopy(live)
    desired["metadata"]["annotations"] = {"grove.io/mnnvl-group": "train"}
    desired["spec"]["template"]["cliques"][1]["topologyConstraint"] = {
        "topologyName": "t",
        "pack": {"required": "host"},
    }
    desired["spec"]["template"]["podCliqueScalingGroups"][0]["resourceSharing"] = [
        {"name": "x", "scope": "PerReplica"}
    ]
    assert frozen_changes(live, desired) == [
        "scaling group 'g': resourceSharing is immutable (None -> [{'name': 'x', 'scope': 'PerReplica'}])",
        "clique 'decode': topologyConstraint cannot be added, removed or changed after creation",
        "the PodCliqueSet: annotation grove.io/mnnvl-group cannot be added after creation",
    ]


def test_mutable_fields_are_not_frozen_and_grove_defaults_count_as_equal() -> None:
    live = _pcs(minAvailable=2)
    desired = _pcs(replicas=5, podSpec={"containers": [{"name": "x", "image": "new"}]})
    del desired["spec"]["template"]["cliques"][1]["spec"]["minAvailable"]  # Grove defaults it to replicas...
    desired["spec"]["template"]["cliques"][1]["spec"]["replicas"] = 2  # ...which is 2, as live has
    assert frozen_changes(live, desired) == []


def test_scale_targets_follow_template_changes_only() -> None:
    live, desired = _pcs(), _pcs(replicas=4)
    desired["spec"]["template"]["podCliqueScalingGroups"][0]["replicas"] = 3
    children = [
        {"kind": "PodClique", "metadata": {"name": "rag-0-decode"}, "spec": {"replicas": 2}},
        {"kind": "PodClique", "metadata": {"name": "rag-0-g-0-prefill"}, "spec": {"replicas": 1}},
        {"kind": "PodCliqueScalingGroup", "metadata": {"name": "rag-0-g"}, "spec": {"replicas": 1}},
    ]
    assert scale_targets(live, desired, children) == [
        ScaleTarget("PodClique", "rag-0-decode", 4, 2),
        ScaleTarget("PodCliqueScalingGroup", "rag-0-g", 3, 1),
    ]
    children[0]["spec"]["replicas"] = 4  # already there (scaled by hand): nothing to do
    assert scale_targets(live, desired, children) == [ScaleTarget("PodCliqueScalingGroup", "rag-0-g", 3, 1)]
    assert scale_targets(live, live, children) == []


def test_frozen_composition_is_refused_then_recreated(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    assert cli("deploy", pipeline_file(replicas=2, min_available=1), "--wait").code == 0
    uid = apiserver.get(PCS, "demo", "chat")["metadata"]["uid"]  # type: ignore[index]
    changed = pipeline_file(replicas=2, min_available=2)

    refused = cli("deploy", changed)
    assert refused.code == 1
    assert refused.err == (
        "error: PodCliqueSet demo/chat already runs with another composition, which Grove does not allow to change "
        "after creation (clique 'build-prompt': minAvailable is immutable (1 -> 2)); rerun with --recreate to delete and create it "
        "(its pods restart), or deploy under a new pipeline name\n"
    )
    assert apiserver.get(PCS, "demo", "chat")["metadata"]["uid"] == uid  # type: ignore[index]
    noted = cli("diff", changed)
    assert (
        noted.code == 1
        and "changes what Grove freezes (clique 'build-prompt': minAvailable is immutable (1 -> 2))"
        in noted.err
    )
    assert "+        minAvailable: 2" in noted.out

    no_tty = cli("deploy", changed, "--recreate")  # no terminal to confirm on: refuse, keep the set
    assert no_tty.code == 1 and "pass --yes" in no_tty.err
    assert apiserver.get(PCS, "demo", "chat")["metadata"]["uid"] == uid  # type: ignore[index]

    recreated = cli("deploy", changed, "--recreate", "--yes", "--wait")
    assert recreated.code == 0, recreated.err
    assert recreated.out.splitlines()[0] == "podcliqueset/chat deleted"
    assert "podcliqueset/chat created" in recreated.out
    live = apiserver.get(PCS, "demo", "chat")
    assert live is not None and live["metadata"]["uid"] != uid
    cliques = {c["name"]: c["spec"] for c in live["spec"]["template"]["cliques"]}
    assert cliques["build-prompt"]["minAvailable"] == 2
    assert "chat-0-build-prompt: 2/2 ready (minAvailable 2), gang scheduled" in recreated.err


def test_a_podcliqueset_grove_pipelines_did_not_deploy_is_never_deleted(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    assert cli("deploy", pipeline_file(replicas=2, min_available=1), "--wait").code == 0
    live = apiserver.get(PCS, "demo", "chat")
    assert live is not None
    # someone else's set under the same name: same object, without our managed-by label
    foreign = copy.deepcopy(live)
    foreign["metadata"] = {
        "name": "chat",
        "namespace": "demo",
        "labels": {"app.kubernetes.io/managed-by": "helm"},
    }
    foreign.pop("status", None)
    assert cli("delete", "chat", "-n", "demo", "--wait").code == 0  # ours goes; then theirs appears
    assert apiserver.get(PCS, "demo", "chat") is None
    apiserver.add(PCS, foreign)
    uid = apiserver.get(PCS, "demo", "chat")["metadata"]["uid"]  # type: ignore[index]

    recreate = cli("deploy", pipeline_file(replicas=2, min_available=2), "--recreate", "--yes")
    assert (
        recreate.code == 1
        and "is not managed by grove-pipelines" in recreate.err
        and "refusing to recreate it" in recreate.err
    )
    deleted = cli("delete", "chat", "-n", "demo")
    assert (
        deleted.code == 1
        and "is not managed by grove-pipelines" in deleted.err
        and "refusing to delete it" in deleted.err
    )
    assert apiserver.get(PCS, "demo", "chat")["metadata"]["uid"] == uid  # type: ignore[index]
