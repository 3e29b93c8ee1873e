"""Request ids the router makes: unique within a process without a system call per request.

``uuid.uuid4()`` reads ``os.urandom`` each time, and two of them per request were a tenth of the
router's CPU. Here each process draws one random start once and counts from it, so ids stay
unique (a counter never repeats within a process; processes start far apart) and keep their shapes:
32 hex digits for a request id, 8 for the nonce that keeps two clients' equal ids apart.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["new_nonce", "new_request_id"]

_PROCESS = ""
_COUNT = itertools.count()


def _draw() -> None:
    """A fresh random start for this process (at import, and again in a forked child)."""
    global _PROCESS, _COUNT
    _PROCESS = os.urandom(8).hex()
    _COUNT = itertools.count(int.from_bytes(os.urandom(4), "big"))


_draw()
os.register_at_fork(after_in_child=_draw)


def new_request_id() -> str:
    """32 hex digits: this process's random half, then its counter."""
    return f"{_PROCESS}{next(_COUNT) & 0xFFFFFFFFFFFFFFFF:016x}"


def new_nonce() -> str:
    """8 hex digits that no other request of this process has had in its last 2**32 requests."""
    return f"{next(_COUNT) & 0xFFFFFFFF:08x}"
