"""The compiled Services reach their stage's pods in every replica of the PodCliqueSet.

The pods' labels are computed here from grove-runtime.md §1.1 and §3.1 (Grove's names and pod labels:
the clique template's labels, under Grove's own keys), not by the compiler or the local runtime, and
the PodCliqueSet is scaled to two replicas as ``kubectl scale`` would (Grove then makes replica 1's
PodCliques ``<pcs>-1-<clique>``).
"""

from __future__ import annotations

from typing import Any

import pytest

from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.local.identity import grove_pods
from grove_pipelines.local.manifest_run import entry_service
from grove_pipelines.spec import PythonStageSpec
from tests.grove.conftest import rag_graph

STAGE_OF_CLIQUE = {
    "frontend": "frontend", "retrieve": "retrieve", "chat-prefill": "chat", "chat-dl": "chat",
    "chat-dw": "chat", "embed": "embed",
}  # fmt: skip
"""What rag_graph() becomes (grove_pipelines/grove/names.py's table), written out by hand."""
SERVICE_STAGE = {"rag": "frontend", "rag-retrieve": "retrieve"}


def _pod_labels(pcs: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(template clique, labels) of every pod Grove makes of ``pcs`` (grove-runtime.md §1.1, §3.1)."""
    name, template = pcs["metadata"]["name"], pcs["spec"]["template"]
    group_of = {c: g for g in template.get("podCliqueScalingGroups") or () for c in g["cliqueNames"]}
    pods = []
    for i in range(pcs["spec"]["replicas"]):
        for clique in template["cliques"]:
            group = group_of.get(clique["name"])
            owners = (
                [(f"{name}-{i}-{clique['name']}", {})]
                if group is None
                else [
                    (
                        f"{name}-{i}-{group['name']}-{j}-{clique['name']}",
                        {
                            "grove.io/podcliquescalinggroup": f"{name}-{i}-{group['name']}",
                            "grove.io/podcliquescalinggroup-replica-index": str(j),
                        },
                    )
                    for j in range(group["replicas"])
                ]
            )
            for pclq, group_labels in owners:
                for k in range(clique["spec"]["replicas"]):
                    grove = {
                        "app.kubernetes.io/managed-by": "grove-operator",
                        "app.kubernetes.io/part-of": name,
                        "app.kubernetes.io/name": pclq,
                        "app.kubernetes.io/component": "pcs-podclique" if group is None else "pcsg-podclique",
                        "grove.io/podclique": pclq,
                        "grove.io/podcliqueset-replica-index": str(i),
                        "grove.io/podclique-pod-index": str(k),
                        **group_labels,
                    }
                    pods.append((clique["name"], {**(clique.get("labels") or {}), **grove}))
    return pods


@pytest.fixture
def scaled() -> list[dict[str, Any]]:
    documents = compile_graph(rag_graph()).documents()
    documents[0]["spec"]["replicas"] = 2
    return documents


def test_every_service_selects_its_stage_in_both_replicas_and_nothing_else(
    scaled: list[dict[str, Any]],
) -> None:
    pods = _pod_labels(scaled[0])
    assert {labels["grove.io/podcliqueset-replica-index"] for _, labels in pods} == {"0", "1"}
    services = {d["metadata"]["name"]: d["spec"]["selector"] for d in scaled if d["kind"] == "Service"}
    assert set(services) == set(SERVICE_STAGE)
    for service, stage in SERVICE_STAGE.items():
        selected = [(c, labels) for c, labels in pods if services[service].items() <= labels.items()]
        expected = [(c, labels) for c, labels in pods if STAGE_OF_CLIQUE[c] == stage]
        assert selected == expected, service
        assert {labels["grove.io/podcliqueset-replica-index"] for _, labels in selected} == {"0", "1"}


def test_the_local_runtime_labels_pods_as_grove_does_and_finds_the_entry_service(
    scaled: list[dict[str, Any]],
) -> None:
    gangs = {"grove.io/podgang", "grove.io/base-podgang"}  # not computed above; identity tests cover them
    local = [(p.clique, {k: v for k, v in p.labels.items() if k not in gangs}) for p in grove_pods(scaled[0])]
    assert sorted(local, key=str) == sorted(_pod_labels(scaled[0]), key=str)
    assert entry_service(scaled) == "rag"


def test_a_stage_may_not_set_the_compilers_labels() -> None:
    with pytest.raises(ValueError, match="grove-pipelines.io/"):
        PythonStageSpec(name="retrieve", labels={"grove-pipelines.io/stage": "chat"})
    assert PythonStageSpec(name="retrieve", labels={"team": "search"}).labels == {"team": "search"}
