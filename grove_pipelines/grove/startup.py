"""Startup order: which cliques each clique ``startsAfter``.

A caller's cliques start after the cliques of its callees (for an LLM: its serving cliques, or the
leaders of its scaling groups), using only the graph's transitive reduction
(``PipelineGraph.startup_edges``): if A calls B and C and B calls C, A waits for B only. Multi-node
workers start after their leader. Prefill and decode never wait for each other: the router sits in
the caller's pod, not in a decode pod.
"""

from __future__ import annotations

from grove_pipelines.graph import PipelineGraph
from grove_pipelines.grove.layout import Layout

__all__ = ["starts_after"]


def starts_after(graph: PipelineGraph, layout: Layout) -> dict[str, list[str]]:
    """Clique name → the cliques it starts after (no duplicates, in a stable order)."""
    deps: dict[str, list[str]] = {}
    for caller, callee in graph.startup_edges():
        targets = layout.targets(callee)
        for unit in layout.units[caller]:
            found = deps.setdefault(unit.clique, [])
            found += [t for t in targets if t not in found]
    for unit in layout.all_units():
        if unit.worker is not None:
            found = deps.setdefault(unit.worker, [])
            if unit.clique not in found:
                found.append(unit.clique)
    return {clique: found for clique, found in deps.items() if found}
