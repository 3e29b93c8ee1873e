"""The compiled multi-node example, expanded as Grove and the kubelet would, without running vLLM multi-node.

Every ``$(VAR)`` of every container must resolve, and each worker's ``--master-addr`` must name the
leader pod of its own scaling-group replica, which the worker's hosts file resolves to that pod's IP.
The workers' ``sh -c`` line is run by the real shell, with a stand-in ``vllm`` on PATH that prints its
arguments (the only double: vLLM multi-node needs GPUs), so the shell's ``$((...))`` is evaluated too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from grove_pipelines.compile import compile_ref
from grove_pipelines.local.container_env import container_launch
from grove_pipelines.local.hosts import hosts_file
from grove_pipelines.local.identity import GrovePod, grove_pods
from grove_pipelines.spec.server_auth import secret_key_refs

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _resolve(hosts: str, name: str) -> list[str]:
    return [line.split("\t")[0] for line in hosts.splitlines() if name in line.split("\t")[1].split()]


def test_every_reference_expands_and_workers_find_their_own_leader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    pcs = compile_ref("pipelines/multinode_disagg.py")[0]
    pods = grove_pods(pcs)
    ips = {pod.name: f"10.99.0.{n + 2}" for n, pod in enumerate(pods)}
    by_pclq: dict[str, list[GrovePod]] = {}
    for pod in pods:
        by_pclq.setdefault(pod.pclq, []).append(pod)
    stand_in = tmp_path / "bin"
    stand_in.mkdir()
    (stand_in / "vllm").write_text(
        "#!/bin/sh\nexec python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' \"$@\"\n"
    )
    (stand_in / "vllm").chmod(0o755)
    secrets: dict[str, dict[str, str]] = {}  # the pipeline's auth Secret, as deploy would create it
    for secret, key in secret_key_refs(pcs):
        secrets.setdefault(secret, {})[key] = f"{secret}/{key}"
    workers_checked = 0
    for pod in pods:
        hosts = hosts_file(pod, [(p, ips[p.name]) for p in pods], {})
        for container in pod.pod_spec["containers"]:
            launch = container_launch(
                pod, container, pod_ip=ips[pod.name], host_ip="10.99.0.1", secrets=secrets
            )
            assert launch.unresolved == [], (pod.name, container["name"], launch.unresolved)
            assert not any("$(GROVE" in a or "$(VLLM" in a for a in launch.argv)
            if container["name"] != "vllm" or pod.pcsg is None:
                continue
            argv = launch.argv
            if argv[:2] == ["sh", "-c"]:
                shell_env = {**launch.env, "PATH": f"{stand_in}:{os.environ['PATH']}"}
                out = subprocess.run(
                    argv, env=shell_env, capture_output=True, text=True, timeout=30, check=True
                )
                argv = ["vllm", *json.loads(out.stdout)]
                assert _arg(argv, "--node-rank") == str(pod.index + 1) and "--headless" in argv
                workers_checked += 1
            else:
                assert _arg(argv, "--node-rank") == "0"
            leader_clique = next(c for c in pcs["spec"]["template"]["podCliqueScalingGroups"]
                                 if pod.clique in c["cliqueNames"])["cliqueNames"][0]  # fmt: skip
            (leader,) = by_pclq[f"{pod.pcsg}-{pod.pcsg_replica}-{leader_clique}"]
            assert _arg(argv, "--master-addr") == leader.fqdn
            assert _resolve(hosts, _arg(argv, "--master-addr")) == [ips[leader.name]]
            assert launch.env["VLLM_HOST_IP"] == launch.env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == ips[pod.name]
    assert (
        workers_checked == sum(p.pod_spec["containers"][0]["command"][:2] == ["sh", "-c"] for p in pods) >= 4
    )
