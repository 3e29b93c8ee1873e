"""How a compiled pod stops: one definition for the compiler and the processes it stops.

Kubernetes stops a pod in steps: it takes the pod out of its Services' endpoints while it runs each
container's ``preStop`` hook, then sends SIGTERM, then SIGKILL once ``terminationGracePeriodSeconds``
(counted from the start) are over. So each container sleeps in ``preStop`` while callers still
reach it, then drains: the pipeline server and the router finish their requests in flight, vLLM its
generations (``--shutdown-timeout``; vLLM's default of 0 aborts them). The grace period covers the
sleep, the longest drain and a margin, or the drain is cut by SIGKILL. The compiler writes the hooks,
the flag and the grace period from these numbers; the server and the router take their default drain
from here.
"""

from __future__ import annotations

import math

__all__ = [
    "ENDPOINT_REMOVAL_S",
    "ROUTER_DRAIN_S",
    "SERVER_DRAIN_S",
    "VLLM_DRAIN_S",
    "grace_period_s",
]

ENDPOINT_REMOVAL_S = 5
"""The ``preStop`` sleep: what Services and routers need to stop sending new requests to the pod."""
SERVER_DRAIN_S = 25
"""The pipeline server's requests in flight get this long after SIGTERM (``GP_DRAIN_S``'s default)."""
ROUTER_DRAIN_S = 30
"""The router sidecar's requests in flight get this long after SIGTERM (its ``drain_timeout``'s default)."""
VLLM_DRAIN_S = 60
"""vLLM's generations in flight get this long after SIGTERM (``--shutdown-timeout``)."""
_MARGIN_S = 5


def grace_period_s(*drains_s: float) -> int:
    """The pod's ``terminationGracePeriodSeconds`` for containers that drain this long each."""
    return math.ceil(ENDPOINT_REMOVAL_S + max(drains_s) + _MARGIN_S)
