"""Ctrl-C of `grove-pipelines run` (what `make run` runs) while its pods start leaves nothing behind.

The run is a subprocess on the compiled agentic example: once its pods are starting (vLLM loading in
three of them), SIGINT must stop every pod and remove every namespace, link and hosts file it made.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from grove_pipelines.local.netns import hosts_folder
from tests.local.runproc import RunProcess, _pump, cmdline

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


def test_sigint_while_pods_start_leaves_no_process_namespace_or_link(tiny_model: Path) -> None:
    argv = [sys.executable, "-m", "grove_pipelines.cli.main", "run", "pipelines/agentic_rag.py", "--port", "0",
            "--model", str(tiny_model)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    run = RunProcess(proc)
    threading.Thread(target=_pump, args=(proc.stdout, run.lines), daemon=True).start()
    try:
        run.wait_for("pods starting in startsAfter order", timeout=120)
        run.wait_for("pod agentic-rag-0-chat-decode-0: starting", timeout=60)
        children: list[psutil.Process] = []
        deadline = time.monotonic() + 60
        while (
            not any("vllm.entrypoints" in " ".join(cmdline(c)) for c in children)
            and time.monotonic() < deadline
        ):
            time.sleep(0.5)
            children = psutil.Process(proc.pid).children(recursive=True)
        assert any("vllm.entrypoints" in " ".join(cmdline(c)) for c in children), "no vLLM process started"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=180) == 0
        run.wait_for("stopped", timeout=5)
    finally:
        run.kill()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f"gp{proc.pid}" not in namespaces and f"gp{proc.pid}" not in links
    assert not hosts_folder(f"gp{proc.pid}").exists()
