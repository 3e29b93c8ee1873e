"""The compiled agentic example run by the local runtime, with real vLLM in its pods (``agentic_cluster``).

What Grove and the kubelet guarantee, observed on the running pods: startsAfter order, the entry
Service, the router ejecting a partitioned decode pod and taking it back, a killed prefill pod
failing no request, a container that stops answering restarted by its liveness probe, and nothing
left behind. Put last in the session: it breaks pods (``vllm_last``).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from grove_pipelines.local.gating import unmet
from grove_pipelines.local.identity import grove_pods
from tests.local.conftest import AgenticCluster

pytestmark = [pytest.mark.vllm, pytest.mark.vllm_last, pytest.mark.timeout(1200)]

FRONTEND = "agentic-rag-0-frontend-0"


def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def _router_health(agentic: AgenticCluster) -> dict[str, bool]:
    """Worker URL -> healthy, from the router's own Prometheus gauge (its /health names no workers
    unless it runs with --debug-routing, which the compiled sidecar does not)."""
    ip = agentic.cluster.pods[FRONTEND].net.ip
    try:
        text = httpx.get(f"http://{ip}:9000/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    return {
        sample.labels["worker"]: sample.value == 1
        for family in text_string_to_metric_families(text)
        if family.name == "grove_router_worker_healthy"
        for sample in family.samples
    }


def _logs(agentic: AgenticCluster, pod: str, lines: int = 40) -> str:
    """The last lines of every container log of ``pod``: a failure's cause, in the test's report."""
    tails = []
    for log in sorted((agentic.cluster.log_dir / pod).glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {pod}/{log.name}\n" + "\n".join(tail))
    return "\n".join(tails)


def test_pods_become_ready_in_starts_after_order(agentic_cluster: AgenticCluster) -> None:
    order = agentic_cluster.cluster.ready_order
    pods = {p.name: p for p in grove_pods(agentic_cluster.documents[0])}
    assert sorted(order) == sorted(pods)
    for at, name in enumerate(order):
        assert unmet(pods[name].starts_after, order[:at]) == [], f"{name} Ready before its parents: {order}"
    # Not necessarily last: Grove starts a clique once minAvailable pods of each parent are Ready, and
    # the prefill clique has 2 replicas with minAvailable 1.
    assert pods[FRONTEND].starts_after, "the frontend starts after the cliques it calls"


def test_the_pipeline_answers_through_the_entry_service(agentic_cluster: AgenticCluster) -> None:
    # The first request loads the retriever's embedding model on two shared cores and can outlast the
    # pipeline's deadline (a clean 504); the second must answer. That load can also starve vLLM's
    # /health past the router's 2 s check three times running (a clean-clone run saw the decode pod
    # marked unhealthy, so the LLM stage got the router's 503): each request waits until the router
    # lists every worker healthy again, as a client would after that 503's Retry-After.
    for _ in range(2):
        _until(
            lambda: (health := _router_health(agentic_cluster)) != {} and all(health.values()),
            120,
            "the router lists every worker as healthy",
        )
        response = httpx.post(
            f"{agentic_cluster.base}/v1/pipelines/agentic-rag",
            json={"question": "What is KV cache?"},
            timeout=300,
        )
        if response.status_code != 504:
            break
    assert response.status_code == 200, f"{response.text}\n{_logs(agentic_cluster, FRONTEND)}"
    result = response.json()
    assert isinstance(result["answer"], str) and result["sources"] >= 1


def test_a_partitioned_decode_pod_is_ejected_and_taken_back_when_healed(
    agentic_cluster: AgenticCluster,
) -> None:
    cluster, thread = agentic_cluster.cluster, agentic_cluster.thread
    decode = "agentic-rag-0-chat-decode-0"
    decode_url = f"http://{decode}.agentic-rag-0.default.svc.cluster.local:8000"

    def decode_healthy() -> bool | None:
        return _router_health(agentic_cluster).get(decode_url)

    _until(lambda: decode_healthy() is True, 60, "the router lists the decode pod as healthy")
    thread.run(cluster.partition, decode)
    try:
        _until(lambda: decode_healthy() is False, 120, "the router ejects the partitioned decode pod")
    finally:
        thread.run(cluster.partition, decode, cut=False)
    _until(lambda: decode_healthy() is True, 120, "the router takes the healed decode pod back")
    _until(lambda: cluster.pods[FRONTEND].ready, 120, "the frontend is Ready again")
    response = httpx.post(
        f"{agentic_cluster.base}/v1/completions",
        json={"model": "chat", "prompt": "def", "max_tokens": 4},
        timeout=300,
    )
    assert response.status_code == 200, response.text


def test_killing_a_prefill_pod_mid_load_fails_no_request(agentic_cluster: AgenticCluster) -> None:
    body = {"model": "chat", "prompt": "The KV cache moves from prefill to decode because", "max_tokens": 24}

    def one(_: int) -> int:
        return httpx.post(f"{agentic_cluster.base}/v1/completions", json=body, timeout=300).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(one, n) for n in range(6)]
        time.sleep(1.0)
        agentic_cluster.thread.run(agentic_cluster.cluster.kill, "agentic-rag-0-chat-prefill-0")
        statuses = [f.result(timeout=600) for f in futures]
    assert statuses == [200] * 6


def test_a_container_that_stops_answering_is_restarted_by_its_liveness_probe(
    agentic_cluster: AgenticCluster,
) -> None:
    cluster = agentic_cluster.cluster
    pod = cluster.pods["agentic-rag-0-keywords-0"]
    server = pod.main[0]
    assert server.process is not None and server.restarts == 0
    os.killpg(server.process.pid, signal.SIGSTOP)  # alive but silent: only a probe can tell
    _until(lambda: server.restarts >= 1, 240, "the liveness probe restarts the stopped server")
    _until(lambda: pod.ready, 120, "the restarted server is Ready again")


def test_stopping_leaves_no_process_namespace_or_link(agentic_cluster: AgenticCluster) -> None:
    """Last: it stops the shared cluster."""
    pids = [c.process.pid for p in agentic_cluster.cluster.pods.values() for c in p.containers if c.process]
    tag = agentic_cluster.cluster.network.tag if agentic_cluster.cluster.network else "none"
    agentic_cluster.thread.call(agentic_cluster.cluster.stop(), timeout=240)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f"{tag}-" not in namespaces and tag not in links
    assert not any(os.path.exists(f"/proc/{pid}") and _not_zombie(pid) for pid in pids)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
