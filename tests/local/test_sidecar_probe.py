"""The compiled router sidecar becomes Ready when its readiness probe runs as the kubelet runs it.

The kubelet sends an httpGet probe from the node to ``<pod IP>:<port>``, never to the pod's loopback.
The pods here are the compiled agentic example's frontend (its ``router-chat`` container exactly as
compiled: command, ports, probe) and its chat prefill and decode cliques, each in its own network
namespace with Grove's names, environment and hosts file. The vLLM containers are replaced by the vLLM
double ``tests/runtime/fake_vllm.py`` (real vLLM is not needed to answer ``/health``); the Python stage
cliques are left out (the frontend waits only for the cliques that run; its server starts, uncalled).
A sidecar that binds 127.0.0.1 never becomes Ready and the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from grove_pipelines.compile import compile_ref
from grove_pipelines.errors import RunError
from grove_pipelines.local.cluster import LocalCluster
from grove_pipelines.local.identity import GrovePod

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


def _frontend_with_its_llm(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pcs = copy.deepcopy(documents[0])
    keep = {"frontend", "chat-prefill", "chat-decode"}
    cliques = [c for c in pcs["spec"]["template"]["cliques"] if c["name"] in keep]
    for clique in cliques:
        spec = clique["spec"]
        spec["startsAfter"] = [p for p in spec.get("startsAfter") or () if p in keep] or None
        if spec["startsAfter"] is None:
            del spec["startsAfter"]
    pcs["spec"]["template"]["cliques"] = cliques
    return [pcs]


def _rewrite(pod: GrovePod, container: Mapping[str, Any]) -> Mapping[str, Any]:
    out = dict(container)
    argv = list(container.get("command") or ())
    if argv[:1] == ["grove-pipelines"]:
        out["command"] = [sys.executable, "-m", "grove_pipelines.cli.main", *argv[1:]]
    elif argv[:1] == ["vllm"]:
        out["command"] = [sys.executable, "-m", "tests.runtime.fake_vllm", "0.0.0.0", "8000", "chat"]
        out["env"] = [{"name": "PYTHONPATH", "value": os.environ.get("PYTHONPATH", str(ROOT))}]
    return out


def test_the_router_sidecar_passes_its_readiness_probe_on_the_pod_ip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    documents = _frontend_with_its_llm(compile_ref("pipelines/agentic_rag.py"))

    async def scenario() -> tuple[list[str], dict[str, Any]]:
        cluster = LocalCluster(documents, rewrite=_rewrite, log_dir=tmp_path)
        try:
            await cluster.start()
            with contextlib.suppress(RunError):
                await cluster.wait_all_ready(timeout=60)
            frontend = cluster.pods["agentic-rag-0-frontend-0"]
            return list(cluster.ready_order), {c.name: c.last_probe_failure for c in frontend.containers}
        finally:
            await cluster.stop()

    order, probes = asyncio.run(scenario())
    assert "agentic-rag-0-frontend-0" in order, f"router sidecar never Ready: {probes}"
    assert order[-1] == "agentic-rag-0-frontend-0"  # it starts after the LLM pods it routes to
    leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"gp{os.getpid()}-" not in leftovers
