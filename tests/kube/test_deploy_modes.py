"""--wait timeouts with reasons, --dry-run=client|server, conflicts, and the CRD the cluster serves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from grove_pipelines.kube import connect
from grove_pipelines.kube.client import MERGE
from tests.kube.apiserver import ApiServerDouble
from tests.kube.apiserver.resources import CRD_RID
from tests.kube.conftest import Cli

PCS = "grove.io/v1alpha1/podcliquesets"


def test_wait_times_out_saying_what_is_not_ready_and_why(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    apiserver.grove.hold("build-prompt", "image")
    apiserver.grove.hold("assistant", "gated")
    ref = pipeline_file()
    assert cli("deploy", ref).code == 0
    apiserver.settle()  # the frontend comes up; the held cliques get stuck
    result = cli("deploy", ref, "--wait", "--timeout", "1s")
    assert result.code == 1
    last = result.err.splitlines()[-1]
    assert last.startswith("error: timed out after 1s waiting for PodCliqueSet demo/chat: ")
    assert "chat-0-build-prompt: 0/1 ready (minAvailable 1), gang scheduled; pod chat-0-build-prompt-" in last
    assert "container server: ImagePullBackOff: Back-off pulling image" in last
    assert 'event Failed: Failed to pull image "' in last
    assert "chat-0-assistant: 0/1 ready (minAvailable 1), gang not scheduled (1 pods gated)" in last
    assert "scheduling gate grove.io/podgang-pending-creation still on" in last
    assert "chat-0-frontend" not in last  # it came up: only what is not ready is listed
    assert (
        "chat-0-frontend: 1/1 ready (minAvailable 1), gang scheduled" in result.err
    )  # progress, one line a clique
    assert "podcliqueset/chat unchanged" in result.out


def test_unschedulable_pods_are_explained(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    apiserver.grove.hold("assistant", "unschedulable")
    ref = pipeline_file()
    assert cli("deploy", ref).code == 0
    apiserver.settle()
    result = cli("deploy", ref, "--wait", "--timeout", "1s")
    assert result.code == 1
    assert (
        "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        in result.err.splitlines()[-1]
    )


def test_client_dry_run_needs_no_cluster_and_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli, repo_root: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    monkeypatch.chdir(repo_root)
    printed = cli("deploy", "pipelines/agentic_rag.py", "--dry-run=client", "-n", "demo")
    assert printed.code == 0, printed.err
    assert printed.out.count("\n---\n") >= 2
    manifest = tmp_path / "rag.yaml"
    manifest.write_text(printed.out)
    checked = cli("validate", str(manifest))
    assert checked.code == 0 and checked.err == "", checked.err
    assert "ok: PodCliqueSet/agentic-rag" in checked.out and "ok: Service/agentic-rag" in checked.out
    assert "namespace: demo" in printed.out and "namespace: default" not in printed.out


def test_server_dry_run_persists_nothing(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    result = cli("deploy", pipeline_file(), "--dry-run=server")
    assert result.code == 0, result.err
    assert "podcliqueset/chat created (server dry run)" in result.out
    applies = apiserver.calls("PATCH", "/podcliquesets/chat")
    assert applies and all(query.get("dryRun") == "All" for _, _, query in applies)
    assert apiserver.get(PCS, "demo", "chat") is None
    assert apiserver.items("/v1/services", "demo") == []


def test_conflicts_are_reported_not_forced(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    ref = pipeline_file()
    assert cli("deploy", ref).code == 0
    with connect() as client:  # someone edits the entry Service by hand (kubectl edit)
        client.request(
            "PATCH",
            "/api/v1/namespaces/demo/services/chat",
            query=[("fieldManager", "kubectl-edit")],
            body={"spec": {"type": "NodePort"}},
            content_type=MERGE,
            action="edit",
        )
    refused = cli("deploy", ref)
    assert refused.code == 1
    assert refused.err == (
        'error: cannot apply Service demo/chat: Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: '
        ".spec.type (HTTP 409 Conflict); rerun with --force-conflicts to take those fields over\n"
    )
    assert apiserver.get("/v1/services", "demo", "chat")["spec"]["type"] == "NodePort"  # type: ignore[index]
    forced = cli("deploy", ref, "--force-conflicts")
    assert forced.code == 0, forced.err
    assert "service/chat configured" in forced.out
    svc = apiserver.get("/v1/services", "demo", "chat")
    assert svc is not None and svc["spec"]["type"] == "ClusterIP"
    assert cli("deploy", ref).code == 0  # ours now: no conflict any more


def test_manifest_is_checked_against_the_crd_the_cluster_serves(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    crd = apiserver.get(CRD_RID, "", "podcliquesets.grove.io")
    assert crd is not None
    template = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "template"
    ]
    del template["properties"]["headlessServiceConfig"]  # an older Grove, without this field
    apiserver.add(CRD_RID, crd)
    result = cli("deploy", pipeline_file())
    assert result.code == 1
    assert result.err.startswith(
        "error: PodCliqueSet demo/chat (against the CRD the cluster serves) rejected, 1 problem: "
        "spec.template.headlessServiceConfig: unknown field"
    )
    assert not apiserver.calls("PATCH", "/podcliquesets/")
