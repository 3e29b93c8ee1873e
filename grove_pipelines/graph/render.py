"""Render a `PipelineGraph` for people: an indented call tree, Mermaid or Graphviz dot."""

from __future__ import annotations

from typing import Literal

from grove_pipelines.graph.model import ENTRY, PipelineGraph
from grove_pipelines.spec import LLMSpec, StageSpec

__all__ = ["Format", "explain", "render"]

Format = Literal["text", "mermaid", "dot"]


def _label(graph: PipelineGraph, node: str) -> str:
    if node == ENTRY:
        return f"{graph.name} (pipeline server)"
    return f"{node} ({_describe(graph.stage(node))})"


def _describe(spec: StageSpec) -> str:
    if isinstance(spec, LLMSpec):
        roles = ", ".join(
            f"{r.role} x{r.replicas}" + (f" of {r.nodes} nodes" if r.nodes > 1 else "") for r in spec.roles()
        )
        return f"llm {spec.model}: {roles}"
    return f"python x{spec.replicas}"


def _text(graph: PipelineGraph) -> str:
    lines: list[str] = []

    def walk(node: str, depth: int, seen: frozenset[str]) -> None:
        lines.append("  " * depth + ("" if depth == 0 else "-> ") + _label(graph, node))
        for callee in graph.callees(node):
            if callee not in seen:
                walk(callee, depth + 1, seen | {callee})

    walk(ENTRY, 0, frozenset({ENTRY}))
    for orphan in graph.unreachable():
        lines.append(f"(not called) {_label(graph, orphan)}")
    return "\n".join(lines)


def _mermaid(graph: PipelineGraph) -> str:
    ids = {node: f"n{i}" for i, node in enumerate([ENTRY, *(s.name for s in graph.stages())])}
    lines = ["flowchart TD"]
    for node, node_id in ids.items():
        shape = ('(["', '"])') if node == ENTRY else (("[/", "/]") if _is_llm(graph, node) else ("[", "]"))
        text = _label(graph, node).replace('"', "'")
        lines.append(
            f'    {node_id}{shape[0]}"{text}"{shape[1]}'
            if node != ENTRY
            else f"    {node_id}{shape[0]}{text}{shape[1]}"
        )
    for caller, callee in graph.edges():
        lines.append(f"    {ids[caller]} --> {ids[callee]}")
    return "\n".join(lines)


def _dot(graph: PipelineGraph) -> str:
    lines = [f'digraph "{graph.name}" {{', "    rankdir=LR;"]
    for node in [ENTRY, *(s.name for s in graph.stages())]:
        shape = "doubleoctagon" if node == ENTRY else ("box3d" if _is_llm(graph, node) else "box")
        text = _label(graph, node).replace('"', '\\"')
        lines.append(f'    "{node}" [label="{text}", shape={shape}];')
    for caller, callee in graph.edges():
        lines.append(f'    "{caller}" -> "{callee}";')
    lines.append("}")
    return "\n".join(lines)


def _is_llm(graph: PipelineGraph, node: str) -> bool:
    return isinstance(graph.stage(node), LLMSpec)


def render(graph: PipelineGraph, fmt: Format = "text") -> str:
    """The graph as ``text`` (call tree), ``mermaid`` (flowchart) or ``dot`` (Graphviz)."""
    return {"text": _text, "mermaid": _mermaid, "dot": _dot}[fmt](graph)


def explain(graph: PipelineGraph) -> str:
    """One line per edge and where it comes from: ``caller -> callee: function at file:line`` or ``declared``."""
    lines = []
    for caller, callee in graph.edges():
        origins = graph.origins(caller, callee)
        lines.append(f"{caller} -> {callee}: {'; '.join(str(o) for o in origins) or 'unknown'}")
    return "\n".join(lines)
