"""The pipeline server: runs a pipeline per request and serves it over HTTP (entry or stage-server mode)."""

from __future__ import annotations

import typing as _typing

from grove_pipelines._lazy import lazy_exports as _lazy_exports

if _typing.TYPE_CHECKING:
    from runtime.server.app import PipelineApp, build_app
    from runtime.server.executor import Executor

__all__ = ["Executor", "PipelineApp", "build_app"]

# Loaded on first use: the router imports ``runtime.server.openapi`` alone, without the executor.
__getattr__, __dir__ = _lazy_exports(
    __name__,
    {
        "Executor": "runtime.server.executor",
        "PipelineApp": "runtime.server.app",
        "build_app": "runtime.server.app",
    },
)
