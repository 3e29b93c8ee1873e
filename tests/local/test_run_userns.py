"""`grove-pipelines run` in a user namespace of its own (how a user without root runs the compiled pods).

Run here as root with ``GROVE_PIPELINES_USERNS=1``, which takes the same path as a user without root:
``unshare --user --map-root-user --net --mount``, the pods' namespaces inside, the entry socket bound
outside and inherited. The pipeline is three Python stages in pods of their own behind their
Services (tests/console/search_pipeline.py), so an answer proves the pods' DNS names and Services
work inside; the machine's own network must show nothing of the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from grove_pipelines.local import userns
from grove_pipelines.local.netns import hosts_folder
from tests.local.runproc import cmdline, start_run

_WHY_NOT = userns.unavailable()

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(_WHY_NOT is not None, reason=f"no user namespace here: {_WHY_NOT}"),
]


def _expected(query: str, limit: int) -> str:
    """search_pipeline's answer, worked out by hand: three documents, ranked by reverse order, the first ``limit``."""
    return " | ".join(sorted((f"{query} doc {i}" for i in range(3)), reverse=True)[:limit])


def test_a_run_in_a_user_namespace_serves_on_this_machine_and_keeps_its_network_to_itself() -> None:
    env = {userns.USERNS_ENV: "1", "XDG_RUNTIME_DIR": "/run/user/4242"}
    run = start_run("tests/console/search_pipeline.py", env=env, timeout=150)
    try:
        assert any(
            "the pods' network is made in a user namespace of this run's own" in line for line in run.seen
        )
        reply = httpx.post(run.endpoint, json={"query": "grove", "limit": 2}, timeout=30, trust_env=False)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"answer": _expected("grove", 2)}
        pid = run.proc.pid
        for kind in ("net", "user"):  # the run itself is inside namespaces of its own
            assert os.readlink(f"/proc/{pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
        inside = ["nsenter", f"--target={pid}", "--mount", "test", "-d", "/run/user/4242"]
        assert (
            subprocess.run(inside, check=False).returncode == 0
        )  # its private /run still has the user's dir
        assert not Path("/run/user/4242").exists()
        outside = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        outside += subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        assert f"gp{pid}" not in outside  # no namespace, bridge or veth of the run on this machine's network
        children = psutil.Process(pid).children(recursive=True)
        assert len([c for c in children if "grove_pipelines.cli.main" in " ".join(cmdline(c))]) >= 4
        run.proc.send_signal(signal.SIGINT)
        assert run.proc.wait(timeout=90) == 0
        run.wait_for("stopped", timeout=5)
    finally:
        run.kill()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    assert not hosts_folder(f"gp{pid}").exists()


def test_the_choice_of_a_user_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(userns.ENTRY_FD_ENV, raising=False)
    for euid, choice, wanted in [(0, "", False), (0, "1", True), (1000, "", True), (1000, "0", False)]:
        monkeypatch.setattr(os, "geteuid", lambda euid=euid: euid)
        monkeypatch.setenv(userns.USERNS_ENV, choice)
        assert userns.wanted() is wanted, (euid, choice)
    monkeypatch.setenv(userns.ENTRY_FD_ENV, "3")  # inside already: never again
    assert userns.wanted() is False


def test_a_machine_without_unshare_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert userns.unavailable() == "no `unshare` command (util-linux, iproute2)"
