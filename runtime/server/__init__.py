"""The pipeline server: runs a pipeline per request and serves it over HTTP (entry or stage-server mode)."""

from __future__ import annotations

from runtime.server.app import build_app
from runtime.server.executor import Executor

__all__ = ["Executor", "build_app"]
