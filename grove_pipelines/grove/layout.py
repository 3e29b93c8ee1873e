"""Which cliques and scaling groups each graph node becomes (naming in ``grove_pipelines.grove.names``).

The layout is the compiler's plan, computed once from the graph: every later builder (cliques,
scaling groups, startup order, routers, Services) reads it instead of re-deriving names. A stage
whose cliques would leave no room for a PodCliqueSet name of ``PCS_FLOOR`` characters gets a shortened
base name (``short_name``); ``role_name`` keeps each clique's unshortened name and ``notes`` says what
was shortened.
"""

from __future__ import annotations

from dataclasses import dataclass

from grove_pipelines.errors import CompileError
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.names import PCS_FLOOR, CliqueSlot, max_pcs_length, short_name
from grove_pipelines.spec import EntrySpec, LLMSpec, PythonStageSpec, RoleSpec

__all__ = ["Layout", "Unit"]

_Replicated = EntrySpec | PythonStageSpec | RoleSpec
_GROUPED_NAMES = {
    "serve": ("", "ldr", "wkr"),
    "prefill": ("p", "pl", "pw"),
    "decode": ("d", "dl", "dw"),
}


@dataclass(frozen=True)
class Unit:
    """One serving unit of a node: a standalone clique, or a scaling group of leader + workers.

    ``clique`` is the clique callers wait for and routers target: the standalone clique, or the
    group's leader. ``role`` is ``entry``, ``python``, ``serve``, ``prefill`` or ``decode``.
    """

    stage: str
    role: str
    clique: str
    group: str | None = None
    worker: str | None = None
    spec: RoleSpec | None = None
    max_pods: int = 1

    @property
    def cliques(self) -> list[str]:
        """Every clique of the unit, leader first."""
        return [self.clique] if self.worker is None else [self.clique, self.worker]


def _llm_units(spec: LLMSpec, base: str) -> list[Unit]:
    units = []
    for role in spec.roles():
        if role.nodes <= 1:
            clique = base if role.role == "serve" else f"{base}-{role.role}"
            units.append(Unit(spec.name, role.role, clique, spec=role, max_pods=_max_replicas(role)))
            continue
        group_suffix, leader, worker = _GROUPED_NAMES[role.role]
        group = f"{base}-{group_suffix}" if group_suffix else base
        units.append(
            Unit(
                spec.name,
                role.role,
                f"{base}-{leader}",
                group=group,
                worker=f"{base}-{worker}",
                spec=role,
            )
        )
    return units


def _units(stage: LLMSpec | PythonStageSpec, base: str) -> list[Unit]:
    if isinstance(stage, LLMSpec):
        return _llm_units(stage, base)
    return [Unit(stage.name, "python", base, max_pods=_max_replicas(stage))]


def _fitting_units(stage: LLMSpec | PythonStageSpec, floor: int) -> list[Unit]:
    """The stage's units, with its base name shortened until its cliques leave ``floor`` for the pcs name."""
    for length in range(len(stage.name), 0, -1):
        base = short_name(stage.name, length)
        if not base:
            break
        units = _units(stage, base)
        if max_pcs_length(_slots(units))[0] >= floor:
            return units
    return _units(stage, stage.name)  # nothing fits: pcs_name names the stage in its error


class Layout:
    """The units of every node, in PodCliqueSet order: the entry first, then stages as declared."""

    def __init__(self, graph: PipelineGraph) -> None:
        entry = graph.pipeline.entry
        self.units: dict[str, list[Unit]] = {
            ENTRY: [Unit(ENTRY, "entry", ENTRY, max_pods=_max_replicas(entry))]
        }
        self._role_names: dict[str, str] = {}
        self.notes: list[str] = []
        floor = min(len(graph.pipeline.name), PCS_FLOOR)
        for stage in graph.stages():
            full = _units(stage, stage.name)
            units = full if max_pcs_length(_slots(full))[0] >= floor else _fitting_units(stage, floor)
            self.units[stage.name] = units
            for short, long in zip(_cliques(units), _cliques(full), strict=True):
                self._role_names[short] = long
            if units is not full and units[0].clique != full[0].clique:
                names = ", ".join(_cliques(units))
                self.notes.append(
                    f"stage {stage.name!r} is too long for Grove's name budget: its cliques are named {names} "
                    "(roleName and the label grove-pipelines.io/stage keep the full names)"
                )

        self._check_suffixes()

    def role_name(self, clique: str) -> str:
        """The clique's ``roleName``: its unshortened name."""
        return self._role_names.get(clique, clique)

    def _check_suffixes(self) -> None:
        """Grove finds a clique's template by name suffix, so no clique name may end another."""
        owner = self.stage_of()
        cliques = [clique for unit in self.all_units() for clique in unit.cliques]
        if len(cliques) != len(owner):
            twice = next(c for c in cliques if cliques.count(c) > 1)
            raise CompileError(
                f"two stages share the clique name {twice!r} after shortening; rename one of them"
            )
        for name in owner:
            for k in range(1, len(name)):
                if name[k:] in owner:
                    short, long = name[k:], name
                    raise CompileError(
                        f"stages {owner[short]!r} and {owner[long]!r} clash: clique name {short!r} is a suffix of "
                        f"{long!r}, and Grove finds clique templates by name suffix; rename one of the stages"
                    )

    def all_units(self) -> list[Unit]:
        """Every unit, in order."""
        return [unit for units in self.units.values() for unit in units]

    def targets(self, node: str) -> list[str]:
        """The cliques a caller of ``node`` starts after: its serving cliques, or their leaders."""
        return [unit.clique for unit in self.units[node]]

    def stage_of(self) -> dict[str, str]:
        """Clique name → stage name (for error messages)."""
        return {clique: unit.stage for unit in self.all_units() for clique in unit.cliques}

    def slots(self) -> list[CliqueSlot]:
        """What the name budgets need: every clique with its group and largest indices."""
        return _slots(self.all_units())


def _cliques(units: list[Unit]) -> list[str]:
    return [clique for unit in units for clique in unit.cliques]


def _slots(units: list[Unit]) -> list[CliqueSlot]:
    slots = []
    for unit in units:
        spec = unit.spec
        group_max = _max_replicas(spec) if spec is not None and unit.group is not None else 1
        for clique in unit.cliques:
            pods = unit.max_pods
            if unit.group is not None:
                pods = spec.nodes - 1 if clique == unit.worker and spec is not None else 1
            slots.append(CliqueSlot(clique, unit.group, max_pods=pods, max_group_replicas=group_max))
    return slots


def _max_replicas(spec: _Replicated) -> int:
    """The most replicas a spec can reach (its autoscaling maximum, if any)."""
    return max(spec.replicas, spec.autoscaling.max_replicas if spec.autoscaling else 1)
