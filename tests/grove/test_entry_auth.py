"""The pipeline server's credentials in the compiled pods, and the refusal of an open entry outside the cluster."""

from __future__ import annotations

from typing import Any

import pytest

from grove_pipelines.errors import CompileError
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.spec import EntrySpec
from tests.grove.conftest import clique, rag_graph


def _secret_env(pcs: dict[str, Any], name: str) -> dict[str, tuple[str, str]]:
    server = next(c for c in clique(pcs, name)["spec"]["podSpec"]["containers"] if c["name"] == "server")
    refs = {e["name"]: (e.get("valueFrom") or {}).get("secretKeyRef") for e in server.get("env") or []}
    return {env: (ref["name"], ref["key"]) for env, ref in refs.items() if ref}


def _pcs(**pipeline: Any) -> dict[str, Any]:
    return next(d for d in compile_graph(rag_graph(**pipeline)).documents() if d["kind"] == "PodCliqueSet")


def test_the_entry_reads_api_keys_and_every_server_the_stage_token_from_the_pipelines_secret() -> None:
    pcs = _pcs()
    assert _secret_env(pcs, "frontend") == {
        "GP_API_KEYS": ("rag-auth", "api-keys"), "GP_STAGE_TOKEN": ("rag-auth", "stage-token"),
    }  # fmt: skip
    assert _secret_env(pcs, "retrieve") == {"GP_STAGE_TOKEN": ("rag-auth", "stage-token")}
    assert "GP_API_KEYS" not in _secret_env(_pcs(entry=EntrySpec(auth=False)), "frontend")


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
def test_an_entry_outside_the_cluster_without_auth_is_refused_unless_public(kind: str) -> None:
    with pytest.raises(CompileError, match=f"a {kind} entry with auth=False.*public=True"):
        compile_graph(rag_graph(entry=EntrySpec(service_type=kind, auth=False)))
    open_on_purpose = compile_graph(
        rag_graph(entry=EntrySpec(service_type=kind, auth=False), public=True)
    ).documents()
    entry = next(d for d in open_on_purpose if d["kind"] == "Service" and d["metadata"]["name"] == "rag")
    assert entry["spec"]["type"] == kind
    with_auth = compile_graph(rag_graph(entry=EntrySpec(service_type=kind))).documents()
    assert any(d["kind"] == "Service" and d["spec"]["type"] == kind for d in with_auth)


def test_inside_the_cluster_an_entry_may_run_without_auth() -> None:
    compile_graph(rag_graph(entry=EntrySpec(auth=False)))  # ClusterIP: reachable only from the cluster
