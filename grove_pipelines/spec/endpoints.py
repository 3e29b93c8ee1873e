"""The HTTP paths the compiled probes call: one definition for the compiler and the servers it probes.

The router and the pipeline server import these for the routes they serve, the compiler for the
``httpGet`` probes it writes, so a renamed route cannot leave a probe calling a path nobody serves.
"""

from __future__ import annotations

__all__ = [
    "LIVENESS_PATH",
    "ROUTER_BIND_HOST",
    "ROUTER_READINESS_PATH",
    "SERVER_READINESS_PATH",
    "VLLM_HEALTH_PATH",
]

ROUTER_READINESS_PATH = "/ready"
"""Answers 200 once the router has a healthy worker to send requests to (its ``/health`` only says
the process is alive, so a client that gets workers ejected cannot pull the pod from its Service)."""
SERVER_READINESS_PATH = "/ready"
"""Answers 503 while the server drains on SIGTERM, so the pod leaves its Service before it stops."""
LIVENESS_PATH = "/health"
"""The router's and the pipeline server's liveness: the process answers."""
VLLM_HEALTH_PATH = "/health"
"""vLLM's own health route (``vllm/entrypoints/openai/api_server.py``)."""
ROUTER_BIND_HOST = "0.0.0.0"
"""The router sidecar listens on every pod address: the kubelet probes it on the pod IP, the server in
the same pod calls it on 127.0.0.1, and the NetworkPolicy admits no other pod to its port."""
