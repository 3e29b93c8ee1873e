"""What the page needs from the server: its static files (open, they hold no data) and the JSON it polls.

The static files are the page's code only; every piece of data comes from ``/v1/console/...``, behind
the server's credentials like any other endpoint, so a browser sends the key as a bearer header from
the page's own ``fetch`` calls (the key is entered once in the page, kept in the tab's session storage,
never in a URL).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.sdk.invoke import current_invoker
from runtime.console.recent import RecentRequests, Waterfall, Waterfalls
from runtime.console.stats import stage_stats
from runtime.server.metrics import Metrics

__all__ = ["PAGE_HEADERS", "PAGE_PATHS", "STATE_PATH", "WATERFALL_PATH", "Console", "graph_document"]

PAGE_PATHS: dict[str, tuple[str, bytes]] = {
    "/": ("index.html", b"text/html; charset=utf-8"),
    "/console/console.js": ("console.js", b"text/javascript; charset=utf-8"),
    "/console/console.css": ("console.css", b"text/css; charset=utf-8"),
}
"""Each static path of the page: its file under ``static/`` and its content type. Open, like ``/health``."""
STATE_PATH = "/v1/console/state"
WATERFALL_PATH = "/v1/console/requests/{request_id}"

PAGE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        (
            b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
            b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
)
"""Sent with the static files: the page runs only its own script and talks only to its own server."""


def _kind(graph: PipelineGraph, node: str) -> str:
    if node == ENTRY:
        return "entry"
    return "llm" if any(spec.name == node for spec in graph.llm_stages()) else "python"


def graph_document(name: str, graph: PipelineGraph) -> dict[str, Any]:
    """The compiled graph as the page draws it: every node (the entry and each stage) and every edge."""
    nodes = [ENTRY, *(spec.name for spec in graph.stages())]
    return {
        "name": name,
        "nodes": [{"name": node, "kind": _kind(graph, node)} for node in nodes],
        "edges": [list(edge) for edge in graph.edges()],
    }


class Console:
    """The page's data for the pipelines ``graphs`` (name, graph), read from ``metrics`` and ``waterfalls``.

    :meth:`observe_stage_call` is the hook for :class:`~runtime.server.metrics.Metrics`: the call is
    placed in the request whose invoker made it.
    """

    def __init__(
        self,
        graphs: Sequence[tuple[str, PipelineGraph]],
        metrics: Metrics,
        waterfalls: Waterfalls | None = None,
    ) -> None:
        self.graphs = [graph_document(name, graph) for name, graph in graphs]
        self.metrics = metrics
        self.recorder = RecentRequests()
        self.waterfalls: Waterfalls = waterfalls or self.recorder
        root = files("runtime.console").joinpath("static")
        self.files = {
            path: (root.joinpath(name).read_bytes(), kind) for path, (name, kind) in PAGE_PATHS.items()
        }

    def observe_stage_call(self, caller: str, stage: str, outcome: str, seconds: float) -> None:
        request_id = getattr(current_invoker(), "request_id", None)
        if isinstance(request_id, str):
            self.recorder.stage_call(request_id, caller, stage, outcome, seconds)

    def state(self) -> dict[str, Any]:
        """The graphs, each stage's cumulative counters and the recent requests (newest first)."""
        return {
            "pipelines": self.graphs,
            "stages": {name: stats.model_dump() for name, stats in stage_stats(self.metrics).items()},
            "requests": [summary.model_dump() for summary in self.waterfalls.recent()],
        }

    def waterfall(self, request_id: str) -> Waterfall | None:
        return self.waterfalls.waterfall(request_id)
