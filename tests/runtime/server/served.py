"""`grove-pipelines serve` as a subprocess, as a pod runs it: its URL, its memory, and its signals."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from tests.local.runproc import ROOT, RunProcess, _pump

__all__ = ["peak_rss_bytes", "start_serve"]


def start_serve(ref: Path | str, *, env: Mapping[str, str] = (), timeout: float = 60) -> RunProcess:  # type: ignore[assignment]
    """Start ``grove-pipelines serve REF`` on 127.0.0.1 and a free port; ``.endpoint`` is its URL."""
    argv = [
        sys.executable,
        "-m",
        "grove_pipelines.cli.main",
        "serve",
        str(ref),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(env)}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    served = RunProcess(proc)
    threading.Thread(target=_pump, args=(proc.stdout, served.lines), daemon=True).start()
    try:
        line = served.wait_for(" on http://", timeout=timeout)
        served.endpoint = line.rsplit(" on ", 1)[1].strip()
    except BaseException:
        served.kill()
        raise
    return served


def peak_rss_bytes(pid: int) -> int:
    """The process's resident-set high-water mark (``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")
