"""What a pod runs: ``grove-pipelines serve REF [--stage NAME]`` loads the pipeline and serves it.

The entry clique serves the pipeline's endpoints; a stage clique serves ``/v1/stages/<name>``. Both
find the stages and LLMs served elsewhere through ``GP_STAGE_URL_*`` / ``GP_LLM_URL_*`` (the
compiler sets them); a stage without a variable runs in this process. Limits and credentials come
from ``GP_*`` too (``runtime.server.settings``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Mapping, Sequence

from grove_pipelines.loader import load_pipeline
from runtime.http import bind_socket
from runtime.server.app import PipelineApp
from runtime.server.executor import Executor
from runtime.server.serving import serve_forever

__all__ = ["load_app", "serve"]

log = logging.getLogger("grove_pipelines.server")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def load_app(
    ref: str,
    *,
    stages: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    llm_urls: Mapping[str, str] | None = None,
) -> tuple[PipelineApp, Executor]:
    """The app for ``ref``: entry mode without ``stages``, stage-server mode with them."""
    options = {} if llm_urls is None else {"llm_urls": dict(llm_urls)}
    executor = Executor.from_loaded(load_pipeline(ref), environ=environ, **options)
    return PipelineApp([executor], stages=stages, pipelines=not stages), executor


def serve(
    ref: str,
    *,
    host: str = "0.0.0.0",
    port: int = 8000,
    stages: Sequence[str] = (),
    on_ready: Callable[[str, Executor], None] | None = None,
) -> None:
    """Load, bind, report, then serve until SIGINT/SIGTERM (graceful: running requests finish)."""
    app, executor = load_app(ref, stages=stages)
    if not _loopback(host) and not executor.settings.api_keys.enabled and not stages:
        log.warning(
            "serving %s on %s without API keys (GP_API_KEYS): anyone who reaches it can run it", ref, host
        )
    sock: socket.socket = bind_socket(host, port)
    if on_ready is not None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        on_ready(f"http://{shown}:{sock.getsockname()[1]}", executor)
    serve_forever(app, sock)
