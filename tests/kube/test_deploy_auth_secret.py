"""deploy makes the pipeline's ``<pcs>-auth`` Secret when it is missing, keeps one that exists, and delete removes it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from tests.kube.apiserver import ApiServerDouble
from tests.kube.conftest import Cli

SECRETS = "/v1/secrets"
PCS = "grove.io/v1alpha1/podcliquesets"


def _decoded(secret: dict[str, object]) -> dict[str, str]:
    data = secret.get("data") or {}
    assert isinstance(data, dict)
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_deploy_creates_random_credentials_once_and_delete_removes_them(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    ref = pipeline_file()
    first = cli("deploy", ref)
    assert first.code == 0, first.err
    assert "secret/chat-auth created" in first.out
    secret = apiserver.get(SECRETS, "demo", "chat-auth")
    assert secret is not None
    values = _decoded(secret)
    assert set(values) == {"api-keys", "stage-token"}
    assert values["api-keys"] != values["stage-token"] and min(len(v) for v in values.values()) >= 32
    pcs = apiserver.get(PCS, "demo", "chat")
    assert pcs is not None
    refs = [
        env["valueFrom"]["secretKeyRef"]
        for clique in pcs["spec"]["template"]["cliques"]
        for container in clique["spec"]["podSpec"]["containers"]
        for env in container.get("env") or []
        if "secretKeyRef" in (env.get("valueFrom") or {})
    ]
    assert {(r["name"], r["key"]) for r in refs} == {("chat-auth", "api-keys"), ("chat-auth", "stage-token")}

    again = cli("deploy", ref)
    assert "secret/chat-auth unchanged" in again.out
    kept = apiserver.get(SECRETS, "demo", "chat-auth")
    assert kept is not None and _decoded(kept) == values  # a redeploy never rotates the keys

    gone = cli("delete", "chat", "--wait", "--timeout", "2m")
    assert gone.code == 0, gone.err
    assert apiserver.get(SECRETS, "demo", "chat-auth") is None


def test_a_secret_the_user_made_first_keeps_its_keys(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    mine = base64.b64encode(b"my-own-key").decode()
    apiserver.add(SECRETS, {"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": "chat-auth", "namespace": "demo"}, "data": {"api-keys": mine}})  # fmt: skip
    done = cli("deploy", pipeline_file())
    assert done.code == 0, done.err
    assert "secret/chat-auth configured" in done.out
    secret = apiserver.get(SECRETS, "demo", "chat-auth")
    assert secret is not None
    values = _decoded(secret)
    assert values["api-keys"] == "my-own-key" and len(values["stage-token"]) >= 32
    assert cli("delete", "chat").code == 0
    assert apiserver.get(SECRETS, "demo", "chat-auth") is not None  # not ours to delete
