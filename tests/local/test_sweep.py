"""What a run killed outright leaves (namespaces, links, hosts files) is removed by the next run's sweep;
a live run's are not touched."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from grove_pipelines.local.netns import hosts_folder, sweep

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _leave(tag: str) -> None:
    """What a run tagged ``tag`` makes: a pod namespace, a bridge, and a hosts file."""
    _ip("netns", "add", f"{tag}-2")
    _ip("link", "add", f"{tag}br", "type", "bridge")
    hosts_folder(tag).mkdir()
    (hosts_folder(tag) / f"{tag}-2").write_text("10.213.0.2 pod\n")


def test_a_dead_runs_leftovers_go_and_a_live_runs_stay() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its PID names a run that is dead
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead, live = f"gp{gone.pid}", f"gp{running.pid}"
    _leave(dead)
    _leave(live)
    try:
        removed = sweep()
        assert {f"{dead}-2", f"{dead}br", str(hosts_folder(dead))} <= set(removed)
        assert not any(live in item for item in removed)
        assert f"{dead}-2" not in _ip("netns", "list") and f"{dead}br" not in _ip("-o", "link")
        assert not hosts_folder(dead).exists()
        assert f"{live}-2" in _ip("netns", "list") and hosts_folder(live).exists()
    finally:
        running.kill()
        running.wait()
        for tag in (dead, live):
            subprocess.run(["ip", "netns", "del", f"{tag}-2"], capture_output=True, check=False)
            subprocess.run(["ip", "link", "del", f"{tag}br"], capture_output=True, check=False)
            subprocess.run(["rm", "-rf", str(hosts_folder(tag))], check=False)
