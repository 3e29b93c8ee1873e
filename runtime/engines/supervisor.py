"""A child process in its own process group: start it, wait until it answers HTTP, stop it without leftovers.

vLLM forks an engine-core and a worker process behind the API server; signalling only the PID leaves
them behind when the server dies badly. Starting the child as a session leader lets :meth:`stop`
signal the whole group: SIGTERM, a grace period, then SIGKILL for whatever is still there. Every
process started here is also stopped at interpreter exit, so a crashed test run leaves nothing.
"""

from __future__ import annotations

import atexit
import http.client
import os
import signal
import subprocess
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from runtime.errors import EngineError, EngineTimeout

__all__ = ["ManagedProcess", "ProgressCallback", "free_port", "http_ok"]

ProgressCallback = Callable[[float, str], None]
"""Called while waiting: seconds elapsed since start, and the last line the process logged."""

_LIVE: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the OS picks it; another process could still take it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when a GET of ``url`` answers 200 (no exception for a refused or dropped connection)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class ManagedProcess:
    """One child process (and its descendants) with its output collected in ``log_path``."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, name: str = "process"
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.name = name
        self._popen: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0

    @property
    def pid(self) -> int | None:
        """The leader's PID (also its process-group id), or None before :meth:`start`."""
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        """The exit code once the leader has exited, else None."""
        return self._popen.poll() if self._popen else None

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and the leader's exit."""
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        """Start the child in a new session, stdout and stderr appended to ``log_path``."""
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"==> {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise EngineError(f"cannot start {self.name}: {exc}", log_path=self.log_path) from exc
        self._started_at = time.monotonic()
        _LIVE.add(self)

    def last_log_line(self) -> str:
        """The last non-empty line of the log, for progress messages and errors."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 4096))
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return next((line.strip() for line in reversed(lines) if line.strip()), "")

    def wait_http_ok(
        self, url: str, *, timeout: float, progress: ProgressCallback | None = None, every: float = 5.0
    ) -> float:
        """Block until GET ``url`` answers 200; return the seconds it took since :meth:`start`.

        ``progress`` is called about every ``every`` seconds. Raises :class:`EngineError` when the
        process exits first and :class:`EngineTimeout` after ``timeout`` seconds (the process is left
        running; the caller decides whether to stop it).
        """
        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + every
        while True:
            if not self.running:
                raise EngineError(
                    f"{self.name} exited with code {self.returncode} before it was ready: "
                    f"{self.last_log_line()}",
                    log_path=self.log_path,
                )
            if http_ok(url, timeout=2.0):
                return time.monotonic() - self._started_at
            now = time.monotonic()
            if now >= deadline:
                raise EngineTimeout(
                    f"{self.name} was not ready after {timeout:.0f} s: {self.last_log_line()}",
                    log_path=self.log_path,
                )
            if progress is not None and now >= next_report:
                progress(now - self._started_at, self.last_log_line())
                next_report = now + every
            time.sleep(0.25)

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM the whole group, wait up to ``grace`` seconds, then SIGKILL what is left.

        Returns the leader's exit code (None if it was never started). Safe to call twice.
        """
        if self._popen is None:
            return None
        pgid = self._popen.pid
        _signal_group(pgid, signal.SIGTERM)
        try:
            self._popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # The leader may be gone while its engine processes linger: wait for the group too.
        deadline = time.monotonic() + max(1.0, grace / 2)
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)
        self._popen.wait()
        _LIVE.discard(self)
        return self._popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once (what a crash looks like to its peers)."""
        if self._popen is not None:
            _signal_group(self._popen.pid, signal.SIGKILL)
            self._popen.wait()
            _LIVE.discard(self)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@atexit.register
def _stop_all() -> None:
    for proc in list(_LIVE):
        proc.stop(grace=5.0)
