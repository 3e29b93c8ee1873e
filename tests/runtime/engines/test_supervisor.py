"""Supervised child processes: readiness over HTTP, clear errors, and no process left behind."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from runtime.engines.supervisor import ManagedProcess, free_port
from runtime.errors import EngineError, EngineTimeout
from tests.polling import eventually_sync


def python(tmp_path: Path, code: str, name: str = "child") -> ManagedProcess:
    return ManagedProcess(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=dict(os.environ),
        log_path=tmp_path / f"{name}.log",
        name=name,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); check its state
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ready_when_http_answers_and_stop_takes_the_whole_group(tmp_path: Path) -> None:
    port = free_port()
    proc = python(
        tmp_path,
        f"""
        import subprocess, sys, http.server, socketserver
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(tmp_path / "grandchild.pid")!r}, "w").write(str(grandchild.pid))
        print("serving", flush=True)
        handler = http.server.SimpleHTTPRequestHandler
        http.server.ThreadingHTTPServer(("127.0.0.1", {port}), handler).serve_forever()
    """,
    )
    proc.start()
    try:
        proc.wait_http_ok(f"http://127.0.0.1:{port}/", timeout=60)
        grandchild = int((tmp_path / "grandchild.pid").read_text())
        assert alive(grandchild) and "serving" in proc.log_path.read_text()
    finally:
        proc.stop(grace=5)
    assert not proc.running and not alive(grandchild)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    proc = python(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn", flush=True)
        time.sleep(600)
    """,
    )
    proc.start()
    eventually_sync(lambda: proc.last_log_line() == "stubborn", what="the child ignores SIGTERM")
    assert proc.stop(grace=0.5) == -9


def test_early_exit_is_an_engine_error_with_the_last_log_line(tmp_path: Path) -> None:
    proc = python(tmp_path, "import sys; print('bad model path'); sys.exit(3)")
    proc.start()
    with pytest.raises(
        EngineError, match=r"child exited with code 3 before it was ready: bad model path"
    ) as info:
        proc.wait_http_ok(f"http://127.0.0.1:{free_port()}/health", timeout=60)
    assert info.value.log_path == tmp_path / "child.log"


def test_not_ready_in_time_is_an_engine_timeout_and_leaves_it_to_the_caller(tmp_path: Path) -> None:
    proc = python(tmp_path, "import time; print('loading', flush=True); time.sleep(600)")
    proc.start()
    progress: list[tuple[float, str]] = []
    try:
        with pytest.raises(EngineTimeout, match="child was not ready after 1 s"):
            proc.wait_http_ok(
                f"http://127.0.0.1:{free_port()}/health",
                timeout=1.0,
                progress=lambda s, line: progress.append((s, line)),
                every=0.2,
            )
        assert proc.running
        assert progress and progress[-1][1] in ("loading", "")
    finally:
        proc.stop(grace=2)
    assert not proc.running
