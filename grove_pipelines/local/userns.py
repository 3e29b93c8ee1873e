"""`grove-pipelines run` without root: the whole run inside a user namespace of its own.

A user namespace (``unshare --user --map-root-user``) gives an unprivileged user root's powers over
the namespaces made with it, as rootless Podman and rootlesskit use them: here a network namespace,
which is the run's node (its bridge, the pods' veths and namespaces), and a mount namespace, where a
tmpfs on ``/run`` holds ``ip netns``'s files. So the run is the same compiled pods, DNS names and
Services as a root run, and nothing of it touches the machine's own network, nor outlives the run:
the namespaces go when its last process exits.

The one thing a user must reach is the entry Service. Its socket is bound before the run enters the
namespaces, on the machine's own ``host:port``, and is handed over as an inherited file descriptor: a
socket stays in the network namespace it was made in, so it keeps taking the user's connections, and
the run forwards them to the entry pods inside.

A root run uses the machine's network namespace unless ``GROVE_PIPELINES_USERNS=1`` asks for this.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from grove_pipelines.errors import RunError

__all__ = ["ENTRY_FD_ENV", "USERNS_ENV", "enter", "entry_socket", "inside", "settle", "unavailable", "wanted"]

USERNS_ENV = "GROVE_PIPELINES_USERNS"
"""``1``: run in a user namespace even as root (a private pod network); ``0``: never."""
ENTRY_FD_ENV = "GROVE_PIPELINES_ENTRY_FD"
"""Set inside the namespaces: the inherited file descriptor of the entry's listening socket."""
_UNSHARE = ("unshare", "--user", "--map-root-user", "--net", "--mount", "--")


def inside() -> bool:
    """Whether this process is the run, already inside its namespaces."""
    return ENTRY_FD_ENV in os.environ


def wanted() -> bool:
    """Whether this run should enter a user namespace: not root (or asked to), and not inside yet."""
    choice = os.environ.get(USERNS_ENV, "")
    if inside() or choice == "0":
        return False
    return choice == "1" or os.geteuid() != 0


def unavailable() -> str | None:
    """Why this machine cannot give the run a user namespace, or None when it can."""
    for program in ("unshare", "ip", "mount"):
        if shutil.which(program) is None:
            return f"no `{program}` command (util-linux, iproute2)"
    try:
        probe = subprocess.run([*_UNSHARE, "true"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if probe.returncode != 0:
        return (probe.stderr.strip().splitlines() or [f"unshare exited {probe.returncode}"])[-1]
    return None


def enter(host: str, port: int, argv: Sequence[str]) -> NoReturn:
    """Bind ``host:port`` here, then become ``grove-pipelines <argv>`` inside new namespaces, holding the socket."""
    try:
        listener = socket.create_server((host, port), family=_family(host))
    except OSError as exc:
        raise RunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    listener.set_inheritable(True)
    env = {**os.environ, ENTRY_FD_ENV: str(listener.fileno())}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(_UNSHARE[0], [*_UNSHARE, sys.executable, "-m", "grove_pipelines.cli.main", *argv], env)
    except OSError as exc:
        raise RunError(f"cannot start unshare: {exc.strerror or exc}") from exc


def settle() -> None:
    """Inside: a private ``/run`` for ``ip netns``, and the node's loopback up (a new namespace has it down).

    The user's ``XDG_RUNTIME_DIR`` (``/run/user/<uid>``) is made again, empty, in the new ``/run``, so
    the programs of the pods that use it find it.
    """
    for argv in (
        ["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"],
        ["ip", "link", "set", "lo", "up"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise RunError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    runtime_dir = Path(os.environ.get("XDG_RUNTIME_DIR") or "/")
    if runtime_dir.is_relative_to("/run") and runtime_dir != Path("/run"):
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def entry_socket() -> socket.socket | None:
    """Inside: the entry's listening socket, bound outside before entering; None for a root run."""
    fd = os.environ.get(ENTRY_FD_ENV)
    if fd is None:
        return None
    listener = socket.socket(fileno=int(fd))
    listener.set_inheritable(False)  # the pods' processes must not hold the user's port open
    return listener


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
