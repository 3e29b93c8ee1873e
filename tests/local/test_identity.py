"""Grove's names, labels, environment and startup dependencies for the notes' running example ``rag``.

The expected values are the tables of ``../shared/notes/grove-runtime.md`` (§1.2, §2.2, §3.1, §4.1),
each read from Grove's source, so this checks the emulation against Grove rather than against itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from grove_pipelines.local.container_env import container_launch
from grove_pipelines.local.identity import GrovePod, StartupDependency, grove_pods


def _clique(name: str, replicas: int, starts_after: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"roleName": name, "replicas": replicas, "podSpec": {"containers": [
        {"name": "main", "command": ["run", "$(GROVE_PCLQ_NAME)-$(GROVE_PCLQ_POD_INDEX).$(GROVE_HEADLESS_SERVICE)"],
         "env": [{"name": "USER_VAR", "value": "u"}]}]}}  # fmt: skip
    if starts_after:
        spec["startsAfter"] = starts_after
    return {"name": name, "labels": {"team": "a"}, "spec": spec}


RAG: dict[str, Any] = {
    "metadata": {"name": "rag", "namespace": "default"},
    "spec": {"replicas": 1, "template": {
        "cliqueStartupType": "CliqueStartupTypeExplicit",
        "cliques": [_clique("frontend", 1), _clique("chat", 1, ["frontend"]), _clique("r1-pl", 1, ["chat"]),
                    _clique("r1-pw", 2, ["r1-pl"])],
        "podCliqueScalingGroups": [{"name": "r1-p", "cliqueNames": ["r1-pl", "r1-pw"], "replicas": 2}],
    }},
}  # fmt: skip


@pytest.fixture
def pods() -> dict[str, GrovePod]:
    return {pod.hostname: pod for pod in grove_pods(RAG)}


def test_pod_hostnames_gangs_and_subdomain(pods: dict[str, GrovePod]) -> None:
    assert sorted(pods) == sorted([
        "rag-0-frontend-0", "rag-0-chat-0", "rag-0-r1-p-0-r1-pl-0", "rag-0-r1-p-0-r1-pw-0", "rag-0-r1-p-0-r1-pw-1",
        "rag-0-r1-p-1-r1-pl-0", "rag-0-r1-p-1-r1-pw-0", "rag-0-r1-p-1-r1-pw-1",
    ])  # fmt: skip
    assert {p.subdomain for p in pods.values()} == {"rag-0"}
    assert pods["rag-0-r1-p-1-r1-pl-0"].fqdn == "rag-0-r1-p-1-r1-pl-0.rag-0.default.svc.cluster.local"
    assert {p.gang for p in pods.values() if "r1-p-1" in p.pclq} == {"rag-0-r1-p-0"}
    assert {p.gang for p in pods.values() if "r1-p-1" not in p.pclq} == {"rag-0"}


def test_labels_of_a_scaled_gang_leader(pods: dict[str, GrovePod]) -> None:
    assert pods["rag-0-r1-p-1-r1-pl-0"].labels == {
        "team": "a",
        "app.kubernetes.io/managed-by": "grove-operator", "app.kubernetes.io/part-of": "rag",
        "app.kubernetes.io/name": "rag-0-r1-p-1-r1-pl", "app.kubernetes.io/component": "pcsg-podclique",
        "grove.io/podclique": "rag-0-r1-p-1-r1-pl", "grove.io/podcliqueset-replica-index": "0",
        "grove.io/podgang": "rag-0-r1-p-0", "grove.io/base-podgang": "rag-0",
        "grove.io/podcliquescalinggroup": "rag-0-r1-p", "grove.io/podcliquescalinggroup-replica-index": "1",
        "grove.io/podclique-pod-index": "0",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("rag-0-r1-p-1-r1-pl-0", {"GROVE_PCS_NAME": "rag", "GROVE_PCS_INDEX": "0", "GROVE_PCLQ_NAME": "rag-0-r1-p-1-r1-pl",
                                   "GROVE_HEADLESS_SERVICE": "rag-0.default.svc.cluster.local", "GROVE_PCLQ_POD_INDEX": "0",
                                   "GROVE_PCSG_NAME": "rag-0-r1-p", "GROVE_PCSG_INDEX": "1", "GROVE_PCSG_TEMPLATE_NUM_PODS": "3"}),
        ("rag-0-r1-p-1-r1-pw-1", {"GROVE_PCLQ_NAME": "rag-0-r1-p-1-r1-pw", "GROVE_PCLQ_POD_INDEX": "1",
                                   "GROVE_PCSG_NAME": "rag-0-r1-p", "GROVE_PCSG_INDEX": "1", "GROVE_PCSG_TEMPLATE_NUM_PODS": "3"}),
        ("rag-0-chat-0", {"GROVE_PCLQ_NAME": "rag-0-chat", "GROVE_PCLQ_POD_INDEX": "0"}),
    ],
)  # fmt: skip
def test_grove_environment_values(pods: dict[str, GrovePod], host: str, expected: dict[str, str]) -> None:
    pod = pods[host]
    launch = container_launch(pod, pod.pod_spec["containers"][0], pod_ip="10.1.0.9", host_ip="10.1.0.1")
    assert expected.items() <= launch.env.items()
    assert next(iter(launch.env)) == "USER_VAR"  # alpha.11 appends Grove's entries after the user's
    if "GROVE_PCSG_NAME" not in expected:
        assert not any(k.startswith("GROVE_PCSG") for k in launch.env)
    assert launch.argv == ["run", pod.fqdn] and not launch.unresolved


def test_explicit_startup_dependencies(pods: dict[str, GrovePod]) -> None:
    deps = {host: pod.starts_after for host, pod in pods.items()}
    assert deps["rag-0-frontend-0"] == ()
    assert deps["rag-0-chat-0"] == (StartupDependency("rag-0-frontend", 1),)
    assert deps["rag-0-r1-p-0-r1-pl-0"] == (StartupDependency("rag-0-chat", 1),)
    assert deps["rag-0-r1-p-0-r1-pw-1"] == (StartupDependency("rag-0-r1-p-0-r1-pl", 1),)
    assert deps["rag-0-r1-p-1-r1-pl-0"] == ()  # chat is outside the scaling group: dropped in a scaled gang
    assert deps["rag-0-r1-p-1-r1-pw-0"] == (StartupDependency("rag-0-r1-p-1-r1-pl", 1),)
