"""The ``grove-pipelines router`` command as a test runs it: in its own session, stderr piped, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

__all__ = ["router_process"]


@asynccontextmanager
async def router_process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``grove-pipelines router ARGS`` until the block ends; then SIGTERM to its group (SIGKILL after 30 s)."""
    cli = str(Path(sys.executable).parent / "grove-pipelines")
    proc = await asyncio.create_subprocess_exec(
        cli, "router", *args, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
