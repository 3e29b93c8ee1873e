"""Two processes on one port: both serve, the kernel spreads connections, stop leaves none behind."""

from __future__ import annotations

import http.client
import time

import pytest

from runtime.http.processes import ProcessGroup
from tests.runtime.http.reuseport_target import serve_pid

pytestmark = pytest.mark.timeout(60)


def _pid_of_new_connection(port: int) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        return int(conn.getresponse().read())
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def test_processes_share_one_port_and_stop_cleanly() -> None:
    group = ProcessGroup(serve_pid, 2)
    group.start()
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 40  # spawn imports the runtime: a few seconds on a busy machine
        while len(pids) < 2 and time.monotonic() < deadline:
            pid = _pid_of_new_connection(group.port)
            if pid is None:
                time.sleep(0.1)
            else:
                pids.add(pid)
        assert pids == {p.pid for p in group.processes}
    finally:
        group.stop()
    assert all(not p.is_alive() for p in group.processes)
    assert _pid_of_new_connection(group.port) is None
