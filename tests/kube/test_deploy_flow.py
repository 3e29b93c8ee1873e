"""deploy -> status -> diff (none) -> change replicas -> /scale -> delete, through the CLI and the double."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.kube.apiserver import ApiServerDouble
from tests.kube.conftest import Cli

PCLQ = "grove.io/v1alpha1/podcliques"
PCS = "grove.io/v1alpha1/podcliquesets"


def test_deploy_status_diff_scale_delete(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    ref = pipeline_file(replicas=1)
    first = cli("deploy", ref, "--wait", "--timeout", "2m")
    assert first.code == 0, first.err
    assert "podcliqueset/chat created" in first.out
    assert "service/chat created" in first.out
    assert "chat-0-build-prompt: 1/1 ready (minAvailable 1), gang scheduled" in first.err
    live = apiserver.get(PCS, "demo", "chat")
    assert live is not None
    managers = {m["manager"] for m in live["metadata"]["managedFields"]}
    assert "grove-pipelines" in managers

    status = cli("status", "chat", "-o", "json")
    assert status.code == 0, status.err
    data = json.loads(status.out)
    assert data["ready"] is True
    cliques = {c["name"]: c for c in data["cliques"]}
    assert cliques["chat-0-build-prompt"]["ready"] == 1
    assert data["gangs"] == [{"name": "chat-0", "phase": "Running"}]
    assert data["endpoints"][0]["entry"] is True
    assert data["endpoints"][0]["url"].startswith("http://chat.demo.svc.cluster.local:")
    table = cli("status", "chat")
    assert "chat-0-build-prompt" in table.out and "MinAvailableBreached=False" in table.out

    same = cli("diff", ref)
    assert same.code == 0, same.out + same.err
    assert same.out == ""
    again = cli("deploy", ref)
    assert "podcliqueset/chat unchanged" in again.out

    ref = pipeline_file(replicas=3)
    changed = cli("diff", ref)
    assert changed.code == 1
    assert re.search(r"^-\s+replicas: 1$", changed.out, re.MULTILINE) and re.search(
        r"^\+\s+replicas: 3$", changed.out, re.MULTILINE
    )
    changes = [line for line in changed.out.splitlines()[2:] if line[:1] in "+-"]
    assert len(changes) == 2, changed.out  # the replicas line, nothing else
    assert "podclique/chat-0-build-prompt would be scaled 1 -> 3 through /scale" in changed.err

    scaled = cli("deploy", ref, "--wait", "--timeout", "2m")
    assert scaled.code == 0, scaled.err
    assert "podclique/chat-0-build-prompt scaled 1 -> 3" in scaled.out
    assert apiserver.calls("PATCH", "/podcliques/chat-0-build-prompt/scale")
    pclq = apiserver.get(PCLQ, "demo", "chat-0-build-prompt")
    assert pclq is not None and pclq["spec"]["replicas"] == 3
    assert re.search(
        r"^chat-0-build-prompt: [123]/3 ready \(minAvailable 1\), gang scheduled$", scaled.err, re.MULTILINE
    )

    gone = cli("delete", "chat", "--wait")
    assert gone.code == 0, gone.err
    assert "podcliqueset/chat deleted" in gone.out and "service/chat deleted" in gone.out
    assert apiserver.get(PCS, "demo", "chat") is None
    assert apiserver.items("/v1/pods", "demo") == []
    assert apiserver.items("/v1/services", "demo") == []
    missing = cli("status", "chat")
    assert missing.code == 1
    assert missing.err == "error: no PodCliqueSet 'chat' in namespace 'demo' (deployed with another -n?)\n"


def test_status_wait_relists_after_410(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    """A watch whose version was compacted away answers 410: ``--wait`` must list again, not fail."""
    apiserver.grove.hold("build-prompt", "gated")  # not ready until the expired watch was served
    apiserver.expire_next_watches(1)
    stop = threading.Event()

    def release_after_the_410() -> None:
        deadline = time.monotonic() + 60
        while apiserver.api.expire_watches and not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        apiserver.grove.release("build-prompt")

    releaser = threading.Thread(target=release_after_the_410, daemon=True)
    releaser.start()
    try:
        done = cli("deploy", pipeline_file(replicas=1), "--wait", "--timeout", "2m")
    finally:
        stop.set()
        releaser.join(timeout=5)
    assert done.code == 0, done.err
    assert apiserver.api.expire_watches == 0  # the expired watch was made...
    calls = [q.get("watch") == "true" for _, _, q in apiserver.calls("GET", "/podcliques")]
    assert True in calls and False in calls[calls.index(True) + 1 :]  # ...and answered by a fresh list
