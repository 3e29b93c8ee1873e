"""Every error the runtime (router, engines) raises for bad configuration or a failing environment.

The runtime has its own tree, rooted in the project's base class so that the CLI entry points turn
any of them into one ``error: ...`` line::

    GrovePipelinesError                      (grove_pipelines.errors)
    └── GroveRuntimeError
        ├── EngineError          a vLLM process could not start, died, or never became healthy
        │   └── EngineTimeout    it did not answer /health within the time allowed (carries the log path)
        ├── RouterConfigError    the router's options or config file are invalid (unknown policy, no workers)
        ├── DiscoveryError       workers could not be discovered (Kubernetes API, DNS, GROVE_* variables)
        └── UpstreamError        a worker failed a request (carries url, status, and whether bytes were sent)
            ├── UpstreamUnreachable  the connection was refused or never made: the worker got nothing
            └── UpstreamTimeout      the worker stayed silent past the connect or read timeout

The offline demo model reuses ``grove_pipelines.errors.ModelError``. Errors carry their context as
attributes, not only inside the message.
"""

from __future__ import annotations

from pathlib import Path

from grove_pipelines.errors import GrovePipelinesError

__all__ = [
    "DiscoveryError",
    "EngineError",
    "EngineTimeout",
    "GroveRuntimeError",
    "RouterConfigError",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]


class GroveRuntimeError(GrovePipelinesError):
    """Base of every error raised by the code that runs in the pods."""


class EngineError(GroveRuntimeError):
    """A vLLM process could not be started or exited early; ``log_path`` holds its output if any."""

    def __init__(self, message: str, *, log_path: Path | None = None) -> None:
        if log_path is not None:
            message = f"{message} (log: {log_path})"
        super().__init__(message)
        self.log_path = log_path


class EngineTimeout(EngineError):
    """A vLLM process did not answer ``/health`` within the time allowed."""


class RouterConfigError(GroveRuntimeError):
    """The router cannot start with these options: unknown policy, bad parameter, no workers, bad file."""


class DiscoveryError(GroveRuntimeError):
    """Workers could not be discovered: the GROVE_* variables are missing or the API refused."""


class UpstreamError(GroveRuntimeError):
    """A worker failed a request leg.

    ``status`` is the HTTP status (``None`` for a connection error or timeout) and ``started`` tells
    whether any byte of the answer had reached the client, i.e. whether a retry is still possible.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None, started: bool = False) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.started = started


class UpstreamUnreachable(UpstreamError):
    """No connection to the worker could be made: it never saw the request (safe to send elsewhere)."""


class UpstreamTimeout(UpstreamError):
    """The worker did not connect or answer within the configured timeout (a gateway timeout, 504)."""
