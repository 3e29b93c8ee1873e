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
from collections.abc import Sequence

__all__ = [
    "ENDPOINT_REMOVAL_S",
    "ROUTER_DRAIN_S",
    "SERVER_DRAIN_S",
    "VLLM_DRAIN_S",
    "grace_period_s",
    "vllm_drain_s",
]

ENDPOINT_REMOVAL_S = 5
"""The ``preStop`` sleep: what Services and routers need to stop sending new requests to the pod."""
SERVER_DRAIN_S = 25
"""The pipeline server's requests in flight get this long after SIGTERM (``GP_DRAIN_S``'s default;
the compiler sets ``GP_*`` variables, a stage's ``env`` may not)."""
ROUTER_DRAIN_S = 30
"""The router sidecar's requests in flight get this long after SIGTERM (its ``drain_timeout``'s default)."""
VLLM_DRAIN_S = 60
"""vLLM's generations in flight get this long after SIGTERM (``--shutdown-timeout``)."""
_MARGIN_S = 5


def vllm_drain_s(args: Sequence[str]) -> int:
    """vLLM's drain with these extra ``vllm serve`` arguments: the last ``--shutdown-timeout`` among
    them (as vLLM's parser takes it), else :data:`VLLM_DRAIN_S`."""
    drain = VLLM_DRAIN_S
    for i, flag in enumerate(args):
        if flag.startswith("--shutdown-timeout="):
            value = flag.split("=", 1)[1]
        elif flag == "--shutdown-timeout" and i + 1 < len(args):
            value = args[i + 1]
        else:
            continue
        if value.isascii() and value.isdigit():
            drain = int(value)
    return drain


def grace_period_s(*drains_s: float) -> int:
    """The pod's ``terminationGracePeriodSeconds`` for containers that drain this long each."""
    return math.ceil(ENDPOINT_REMOVAL_S + max(drains_s) + _MARGIN_S)
