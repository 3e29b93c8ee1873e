"""The cluster-side hardening of every compiled example: container privileges, tokens, sidecars, NetworkPolicies.

The NetworkPolicy check evaluates the compiled policies with Kubernetes' semantics (a pod selected by
an Ingress policy accepts a connection only if some rule's peer selector matches the source pod's
labels and its ports include the destination port) against the labels Grove gives the pods
(``grove_pipelines.local.identity``), and compares with the connections the pipeline needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grove_pipelines.compile import compile_ref
from grove_pipelines.local.identity import GrovePod, grove_pods

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "pipelines").glob("*.py"))


@pytest.fixture(params=EXAMPLES, ids=lambda p: p.stem)
def documents(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.chdir(ROOT)
    return compile_ref(f"pipelines/{request.param.name}")


def _pod_specs(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["spec"]["podSpec"] for c in documents[0]["spec"]["template"]["cliques"]]


def test_every_container_runs_unprivileged(documents: list[dict[str, Any]]) -> None:
    for pod in _pod_specs(documents):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True and ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["seccompProfile"] == {
                "type": "RuntimeDefault"
            }
            if container["name"] != "vllm":
                assert ctx["readOnlyRootFilesystem"] is True
                assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_only_the_router_container_holds_a_token(documents: list[dict[str, Any]]) -> None:
    token_path = "/var/run/secrets/kubernetes.io/serviceaccount"
    for pod in _pod_specs(documents):
        assert pod["automountServiceAccountToken"] is False
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert (token_path in mounts) == container["name"].startswith("router-"), container["name"]


def test_routers_are_native_sidecars_that_outlive_the_server(documents: list[dict[str, Any]]) -> None:
    for pod in _pod_specs(documents):
        assert not any(c["name"].startswith("router-") for c in pod["containers"])
        for router in pod.get("initContainers", []):
            assert (
                router["restartPolicy"] == "Always"
                and router["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
            )
            assert "0.0.0.0" in router["command"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions") or ())


def _admits(policies: list[dict[str, Any]], src: GrovePod, dst: GrovePod, port: int) -> bool:
    selecting = [p for p in policies if _selects(p["spec"]["podSelector"], dst.labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or ():
            peers_ok = "from" not in rule or any(
                _selects(peer["podSelector"], src.labels) for peer in rule["from"]
            )
            ports_ok = "ports" not in rule or any(p["port"] == port for p in rule["ports"])
            if peers_ok and ports_ok:
                return True
    return False


def test_network_policies_admit_exactly_the_pipelines_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    documents = compile_ref("pipelines/agentic_rag.py")
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    pods = {p.clique: p for p in grove_pods(documents[0])}
    frontend, prefill, decode = pods["frontend"], pods["chat-prefill"], pods["chat-decode"]
    keywords, retriever = pods["keywords"], pods["retriever"]
    # what the pipeline does: the entry calls its stages and (through its router) vLLM
    for callee in (keywords, retriever, prefill, decode):
        assert _admits(policies, frontend, callee, 8000), callee.clique
    # NIXL: side channel (5600) and UCX transfer ports between the LLM's prefill and decode pods only
    assert _admits(policies, decode, prefill, 5600) and _admits(policies, prefill, decode, 41234)
    # everything else is refused
    assert not _admits(policies, keywords, prefill, 8000)
    assert not _admits(policies, retriever, keywords, 8000)
    assert not _admits(policies, keywords, prefill, 5600)
    assert not _admits(policies, prefill, frontend, 9000)  # the router's port: the kubelet only
    assert not _admits(policies, keywords, frontend, 9000)
    assert _admits(policies, keywords, frontend, 8000)  # the entry takes any client
