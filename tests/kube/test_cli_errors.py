"""Cluster problems through the CLI: each one clear line on stderr, exit 1, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kube.apiserver import ApiServerDouble
from tests.kube.conftest import Cli


def _one_line_error(result: object) -> str:
    err = result.err  # type: ignore[attr-defined]
    assert result.code == 1, err  # type: ignore[attr-defined]
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_kubeconfig_pointing_nowhere(tmp_path: Path, repo_root: Path) -> None:
    """The acceptance check, through the installed console script: one line, exit 1, no traceback."""
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env["KUBECONFIG"] = str(tmp_path / "nowhere" / "config")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "grove-pipelines"), "deploy", "pipelines/agentic_rag.py"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"error: no Kubernetes cluster configured: kubeconfig {tmp_path / 'nowhere' / 'config'} "
        "does not exist; point KUBECONFIG or --kubeconfig at one (see deploy/README.md)\n"
    )


def test_no_cluster_listening(
    apiserver: ApiServerDouble,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    pipeline_file: Callable[..., str],
) -> None:
    with socket.socket() as sock:  # a loopback port that nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = apiserver.http.write_kubeconfig(tmp_path / "kc", server=f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KUBECONFIG", str(path))
    err = _one_line_error(cli("deploy", pipeline_file()))
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in err
    assert f"kubeconfig {path}, context double" in err and "Connection refused" in err


def test_unknown_context(kubeconfig: Path, cli: Cli) -> None:
    err = _one_line_error(cli("status", "chat", "--context", "prod"))
    assert err == f"error: kubeconfig {kubeconfig} has no context 'prod' (it has: double)\n"


def test_grove_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    with ApiServerDouble(grove_installed=False) as api:
        monkeypatch.setenv("KUBECONFIG", str(api.write_kubeconfig(tmp_path / "kc")))
        err = _one_line_error(cli("deploy", pipeline_file()))
    assert "Grove is not installed" in err and "deploy/README.md" in err


def test_missing_namespace_then_create_namespace(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    ref = pipeline_file()
    err = _one_line_error(cli("deploy", ref, "-n", "team-a"))
    assert err == (
        "error: namespace 'team-a' does not exist; create it (kubectl create namespace team-a) or pass "
        "--create-namespace\n"
    )
    assert not apiserver.calls("PATCH", "/namespaces/team-a/")
    created = cli("deploy", ref, "-n", "team-a", "--create-namespace")
    assert created.code == 0, created.err
    assert "namespace/team-a created" in created.out
    assert apiserver.get("grove.io/v1alpha1/podcliquesets", "team-a", "chat") is not None


def test_forbidden_is_one_line_naming_the_verb(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    apiserver.forbid("patch", "podcliquesets")
    err = _one_line_error(cli("deploy", pipeline_file()))
    assert err == (
        'error: cannot apply PodCliqueSet demo/chat: podcliquesets.grove.io "chat" is forbidden: '
        'User "alice" cannot patch resource "podcliquesets" in API group "grove.io" in the namespace '
        '"demo" (HTTP 403 Forbidden)\n'
    )


def test_expired_token(
    apiserver: ApiServerDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(apiserver.write_kubeconfig(tmp_path / "kc", token="expired")))
    err = _one_line_error(cli("status", "chat"))
    assert err == "error: cannot discover the API grove.io/v1alpha1: Unauthorized (HTTP 401 Unauthorized)\n"


def test_bad_options_are_usage_errors(kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]) -> None:
    ref = pipeline_file()
    bad = cli("deploy", ref, "--dry-run", "maybe")
    assert bad.code == 2 and "client, server, none" in bad.err and "Traceback" not in bad.err
    late = cli("deploy", ref, "--wait", "--timeout", "soon")
    assert late.code == 2 and "is not a duration" in late.err
    fmt = cli("status", "chat", "-o", "xml")
    assert fmt.code == 2 and "table, json, yaml" in fmt.err
