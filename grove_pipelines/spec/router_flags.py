"""The flags of ``grove-pipelines router``: one spelling for the CLI that parses them
(``grove_pipelines.cli.router_cmd``) and for those that write router command lines (the compiler's
sidecars in ``grove_pipelines.grove.containers``, the local runner's routers)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "COMMAND",
    "CONFIG",
    "DISCOVERY",
    "GROVE_DISCOVERY",
    "HOST",
    "POLICY",
    "PORT",
    "ROUTING_POLICIES",
    "SUBCOMMAND",
    "WORKER_PORT",
    "DiscoveryMode",
    "Pool",
    "RoutingPolicy",
    "clique_flag",
    "group_flag",
    "selector_flag",
    "urls_flag",
]

Pool = Literal["prefill", "decode", "worker"]
"""The router's worker pools: prefill and decode workers, or aggregated ones (``worker``)."""

SUBCOMMAND = "router"
COMMAND = ("grove-pipelines", SUBCOMMAND)
HOST = "--host"
PORT = "--port"
CONFIG = "--config"
DISCOVERY = "--discovery"
DiscoveryMode = Literal["static", "grove", "kubernetes"]
"""Where the router learns its workers: the flags' URLs, Grove's pod variables and DNS, or the API's pods."""
GROVE_DISCOVERY: DiscoveryMode = "grove"
"""What the compiler's sidecars run: the workers of the cliques named by ``clique_flag``."""
WORKER_PORT = "--worker-port"
"""The port of discovered workers."""
POLICY = "--policy"
"""The routing policy of every pool (``RoutingPolicy``)."""

RoutingPolicy = Literal["prefix", "round_robin", "least_loaded"]
"""How a router spreads an LLM stage's requests over its workers (the runtime's policy registry names):
``prefix`` keeps a prompt's prefix, a session's turns and a fan-out's siblings on the worker that
holds (or will hold) their KV cache, within a load guard; ``round_robin`` takes each worker in turn;
``least_loaded`` the one with the fewest requests in flight."""
ROUTING_POLICIES: tuple[RoutingPolicy, ...] = get_args(RoutingPolicy)


def urls_flag(pool: Pool) -> str:
    """``--prefill URL``: a static worker of the pool (repeated for more)."""
    return f"--{pool}"


def clique_flag(pool: Pool) -> str:
    """``--prefill-clique NAME``: the Grove clique (a group's leader clique) of the pool's workers."""
    return f"--{pool}-clique"


def group_flag(pool: Pool) -> str:
    """``--decode-group NAME``: the Grove scaling group of a multi-node pool."""
    return f"--{pool}-group"


def selector_flag(pool: Pool) -> str:
    """``--worker-selector SELECTOR``: a label selector of the pool's pods (``kubernetes`` discovery)."""
    return f"--{pool}-selector"
