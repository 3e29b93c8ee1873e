"""`grove-pipelines run` as a subprocess: its output lines, its endpoint, and stopping it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunProcess:
    """The `run` subprocess, its output lines (stdout and stderr together) and its endpoint."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    endpoint: str = ""

    def wait_for(self, fragment: str, timeout: float) -> str:
        """The first output line containing ``fragment``; fails with the whole output after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if fragment in line:
                return line
        raise AssertionError(f"no {fragment!r} in the output of run:\n" + "".join(self.seen))

    def kill(self) -> None:
        """Stop it if still running: SIGINT (its own cleanup), then SIGKILL of it and every descendant."""
        if self.proc.poll() is not None:
            return
        children = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            child.kill()


def _pump(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def start_run(*args: str, timeout: float = 180, env: Mapping[str, str] | None = None) -> RunProcess:
    """Start `grove-pipelines run ARGS --port 0` in the repository (``env`` added to ours) and wait for
    its endpoint line."""
    argv = [sys.executable, "-m", "grove_pipelines.cli.main", "run", *args, "--port", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    run = RunProcess(proc)
    threading.Thread(target=_pump, args=(proc.stdout, run.lines), daemon=True).start()
    try:
        line = run.wait_for("is serving on ", timeout=timeout)
        run.endpoint = line.split("is serving on ", 1)[1].split()[0].strip()
        run.wait_for("try: curl", timeout=10)
    except BaseException:
        run.kill()
        raise
    return run


def cmdline(process: psutil.Process) -> list[str]:
    """A process's argv; empty once it is gone."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []
