"""`PipelineGraph`: the only thing the compiler and the runtime read about a pipeline.

Nodes are stage names plus ``ENTRY`` (the pipeline server, whose body calls the first stages); an
edge ``(a, b)`` means "a calls b". The graph is built from plain specs, so it can be made from data
alone (tests, property tests) as well as from decorated code (``grove_pipelines.graph.build``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import networkx as nx

from grove_pipelines.errors import CycleError, GraphError
from grove_pipelines.graph.origin import Origin, definition_origin
from grove_pipelines.spec import LLMSpec, PipelineSpec, PythonStageSpec, StageSpec

if TYPE_CHECKING:
    from grove_pipelines.sdk import LLM, Stage

__all__ = ["ENTRY", "PipelineGraph"]

ENTRY = "frontend"
"""Node and clique name of the pipeline server (the entry); no stage may take it."""


class PipelineGraph:
    """A checked, acyclic call graph of one pipeline.

    Example::

        graph = PipelineGraph(PipelineSpec(name="demo"), [retrieve, chat], [(ENTRY, "retrieve"), (ENTRY, "chat")])
        graph.callees(ENTRY)        # ['retrieve', 'chat']
        graph.startup_order()       # callees first: ['retrieve', 'chat', 'frontend']

    Built from code (``grove_pipelines.graph.build``), it also keeps where each edge came from
    (``origins``) and the stage objects it found (``objects``), so the runtime never scans again.
    """

    def __init__(
        self,
        pipeline: PipelineSpec,
        stages: Sequence[StageSpec],
        edges: Iterable[tuple[str, str]],
        *,
        warnings: Sequence[str] = (),
        origins: Mapping[tuple[str, str], Sequence[Origin]] | None = None,
        objects: Mapping[str, Stage | LLM] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.warnings: list[str] = list(warnings)
        self._origins = {edge: list(found) for edge, found in (origins or {}).items()}
        self.objects: dict[str, Stage | LLM] = dict(objects or {})
        self._stages: dict[str, StageSpec] = {}
        for spec in stages:
            if spec.name == ENTRY:
                raise GraphError(
                    f"stage name {ENTRY!r} is reserved for the pipeline server; rename the stage"
                )
            if spec.name in self._stages:
                raise GraphError(
                    f"two stages are named {spec.name!r}; stage names must be unique in a pipeline"
                )
            self._stages[spec.name] = spec
        self._graph: nx.DiGraph[str] = nx.DiGraph()
        self._graph.add_node(ENTRY)
        self._graph.add_nodes_from(self._stages)
        for caller, callee in edges:
            for end in (caller, callee):
                if end != ENTRY and end not in self._stages:
                    raise GraphError(f"edge {caller!r} -> {callee!r} names an unknown stage {end!r}")
            if callee == ENTRY:
                raise GraphError(f"stage {caller!r} cannot call the pipeline itself")
            if caller == callee:
                raise CycleError([caller], where=self._where([(caller, callee)]))
            self._graph.add_edge(caller, callee)
        self._check_acyclic()

    def _check_acyclic(self) -> None:
        if nx.is_directed_acyclic_graph(
            self._graph
        ):  # one topological sort; find_cycle searches edge by edge
            return
        cycle = nx.find_cycle(self._graph)
        raise CycleError([edge[0] for edge in cycle], where=self._where([(a, b) for a, b, *_ in cycle]))

    def _where(self, edges: Sequence[tuple[str, str]]) -> list[str]:
        """``a -> b in helper at file:line`` for each edge with a known origin (for error messages)."""
        found = []
        for caller, callee in edges:
            origins = self._origins.get((caller, callee))
            if origins:
                found.append(f"{caller} -> {callee}: {origins[0]}")
        return found

    def how_to_declare(self, caller: str, callee: str) -> str:
        """The exact code to add so ``caller`` may call ``callee`` (for calls the code scan cannot see)."""
        if caller == ENTRY:
            return f'calls=["{callee}"] to @pipeline(name="{self.name}", ...)'
        target = getattr(self.objects.get(caller), "target", None)
        where = definition_origin(target) if target is not None else None
        at = f" at {where.file}:{where.line}" if where is not None else ""
        return f'depends_on=["{callee}"] to the @stage decorator of {caller!r}{at}'

    def origins(self, caller: str, callee: str) -> list[Origin]:
        """Where the edge ``caller -> callee`` comes from (empty for graphs made from data)."""
        return list(self._origins.get((caller, callee), ()))

    @property
    def name(self) -> str:
        """The pipeline's name (also the PodCliqueSet's, before any shortening)."""
        return self.pipeline.name

    def stages(self) -> list[StageSpec]:
        """Every stage, in the order it was declared."""
        return list(self._stages.values())

    def stage(self, name: str) -> StageSpec:
        """The spec of one stage; a ``GraphError`` names the unknown stage."""
        try:
            return self._stages[name]
        except KeyError:
            raise GraphError(f"the pipeline {self.name!r} has no stage {name!r}") from None

    def python_stages(self) -> list[PythonStageSpec]:
        """The Python stages, in declaration order."""
        return [s for s in self._stages.values() if isinstance(s, PythonStageSpec)]

    def llm_stages(self) -> list[LLMSpec]:
        """The LLM stages, in declaration order."""
        return [s for s in self._stages.values() if isinstance(s, LLMSpec)]

    def edges(self) -> list[tuple[str, str]]:
        """All ``(caller, callee)`` pairs, in insertion order."""
        return list(self._graph.edges())

    def has_edge(self, caller: str, callee: str) -> bool:
        """Whether ``caller`` may call ``callee`` (the runtime refuses calls that are not edges)."""
        return bool(self._graph.has_edge(caller, callee))

    def callees(self, name: str) -> list[str]:
        """Stages that ``name`` calls directly."""
        return list(self._graph.successors(name))

    def callers(self, name: str) -> list[str]:
        """Nodes that call ``name`` directly."""
        return list(self._graph.predecessors(name))

    def startup_order(self) -> list[str]:
        """Every node, callees before callers (stable: ties keep declaration order)."""
        order = {node: i for i, node in enumerate(self._graph.nodes)}
        reverse = self._graph.reverse(copy=False)
        return list(nx.lexicographical_topological_sort(reverse, key=order.__getitem__))

    def startup_edges(self) -> list[tuple[str, str]]:
        """The ``(caller, callee)`` edges that matter for startup: the transitive reduction.

        If A calls B and C, and B calls C, A need not wait for C: B already does. One pass in reverse
        topological order with reachability bitsets (linear in the edges, not a search per node).
        """
        bit = {node: 1 << index for index, node in enumerate(self._graph.nodes)}
        reaches: dict[str, int] = {}  # node -> the nodes it reaches (bits), itself excluded
        implied: dict[str, int] = {}  # node -> the nodes it reaches through a callee (direct edge redundant)
        for node in reversed(list(nx.topological_sort(self._graph))):
            through = direct = 0
            for callee in self._graph.successors(node):
                through |= reaches[callee]
                direct |= bit[callee]
            implied[node], reaches[node] = through, through | direct
        edges = self._graph.edges()
        return [(caller, callee) for caller, callee in edges if not implied[caller] & bit[callee]]

    def unreachable(self) -> list[str]:
        """Stages the pipeline never calls (kept, but warned about)."""
        reached = nx.descendants(self._graph, ENTRY)
        return [name for name in self._stages if name not in reached]

    def __len__(self) -> int:
        return len(self._stages)

    def __repr__(self) -> str:
        return f"PipelineGraph({self.name!r}, stages={list(self._stages)}, edges={self.edges()})"
