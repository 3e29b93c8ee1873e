"""The server's door, in front of every endpoint: who may come in, and whether it is still taking work.

* ``/health`` (alive), ``/ready`` (503 while draining) and ``/metrics`` are open to the kubelet and
  Prometheus, and the page's static files (``runtime.console``) to a browser; everything else needs credentials once the server has them: a bearer key from
  ``GP_API_KEYS`` for the entry's endpoints, the pipeline's stage token for
  ``/v1/stages/*`` (so a stage server trusts ``X-GP-Caller`` only from the pipeline's own pods).
* After SIGTERM (:meth:`Gate.start_draining`) new requests get 503 with ``Retry-After`` while the ones
  in flight finish (the listener's drain waits for them).
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime.auth import ApiKeys
from runtime.console.page import PAGE_PATHS
from runtime.server.call_protocol import stage_path
from runtime.server.errors import DrainingError, PipelineRunError, UnauthorizedError

__all__ = ["OPEN_PATHS", "Gate"]

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", *PAGE_PATHS})
"""Open to all: probes, Prometheus, and the page's static files (its code only; its data needs the key)."""
_STAGES = stage_path("")


class Gate:
    """Credentials and the draining flag of one server."""

    def __init__(self, *, api_keys: ApiKeys | None = None, stage_keys: ApiKeys | None = None) -> None:
        self.api_keys = api_keys or ApiKeys()
        self.stage_keys = stage_keys or ApiKeys()
        self.draining = False

    def start_draining(self) -> None:
        """Refuse new work from now on (503); requests in flight carry on."""
        self.draining = True

    def refusal(self, path: str, headers: Mapping[str, str]) -> PipelineRunError | None:
        """Why a request for ``path`` with ``headers`` (lower-case names) may not come in, or None."""
        if path in OPEN_PATHS:
            return None
        if self.draining:
            return DrainingError("the server is shutting down; retry (another replica takes the request)")
        keys = self.stage_keys if path.startswith(_STAGES) else self.api_keys
        if keys.enabled and not keys.check(headers.get("authorization")):
            what = "stage token" if keys is self.stage_keys else "API key (Authorization: Bearer <key>)"
            return UnauthorizedError(f"missing or invalid {what}")
        return None
