"""vLLM general plugin: NIXL's UCX progress thread waits for events instead of spinning.

vLLM's NixlConnector creates its NIXL agent with a progress thread, and NIXL's Python API sets that
thread's poll timeout (``pthrDelay``) to 0, so the thread calls ``poll()`` with a zero timeout in a
loop and burns a whole core per vLLM worker even when idle (measured here: 100 % of one core per
idle instance, 80 % of it in the kernel). With a delay of at least 1 µs NIXL polls the UCX workers'
event fds with a timeout rounded up to 1 ms: a transfer event still wakes the thread at once, and the
timeout is only NIXL's periodic wake-up for UCX events it may miss. On a GPU node with cores to
spare the spin buys little; on CPU nodes, and on this project's 2-core local runs, it starves the
engines themselves.

vLLM loads every ``vllm.general_plugins`` entry point in each of its processes (API server, engine
core and workers), so installing grove-pipelines next to vLLM is enough. Set
``GROVE_NIXL_PROGRESS_DELAY_US=0`` to keep NIXL's spinning default, or ``VLLM_PLUGINS`` to choose
plugins.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

DELAY_ENV = "GROVE_NIXL_PROGRESS_DELAY_US"
DEFAULT_DELAY_US = 1000
"""NIXL rounds the delay up to whole milliseconds; 1 ms is its shortest non-spinning wait."""

_PATCHED = "_grove_pthr_delay"

UCX_RCACHE_ENV = "UCX_RCACHE_MAX_UNRELEASED"
UCX_RCACHE_DEFAULT = "1024"
"""What vLLM sets before its own first import of NIXL (``vllm/distributed/nixl_utils.py``), against a
rare memory leak in UCX. UCX reads it when NIXL loads, and this plugin loads NIXL first: so it sets
the same default, unless the user set a value."""


def progress_delay_us() -> int:
    """The configured delay, in microseconds; 0 keeps NIXL's busy poll."""
    raw = os.environ.get(DELAY_ENV, "").strip()
    if not raw:
        return DEFAULT_DELAY_US
    try:
        return max(0, int(raw))
    except ValueError:
        raise ValueError(f"{DELAY_ENV} must be a whole number of microseconds, got {raw!r}") from None


def register() -> None:
    """Entry point: wrap NIXL's agent constructor so a progress thread never spins (idempotent)."""
    delay = progress_delay_us()
    if delay == 0:
        return
    if "nixl" not in sys.modules:
        os.environ.setdefault(UCX_RCACHE_ENV, UCX_RCACHE_DEFAULT)
    try:
        api = importlib.import_module("nixl._api")
    except ImportError:
        return  # no NIXL here: nothing spins
    bindings = api.nixlBind
    if getattr(bindings.nixlAgent, _PATCHED, None) is not None:
        return
    original = bindings.nixlAgent

    def agent(name: str, config: Any) -> Any:
        if config.useProgThread and config.pthrDelay < delay:
            config.pthrDelay = delay
        return original(name, config)

    setattr(agent, _PATCHED, delay)
    bindings.nixlAgent = agent
