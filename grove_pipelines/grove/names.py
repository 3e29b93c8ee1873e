"""Clique, scaling-group and PodCliqueSet names, and Grove's name budgets.

Naming (one graph node → cliques; ``m`` is an LLM stage's name):

=====================================  ==========================  =====================
what                                   cliques                     scaling group
=====================================  ==========================  =====================
pipeline server (entry)                ``frontend``                –
Python stage ``s``                     ``s``                       –
LLM, aggregated, 1 node                ``m``                       –
LLM, aggregated, N nodes               ``m-ldr`` + ``m-wkr``       ``m``
LLM, disaggregated, 1 node per role    ``m-prefill``, ``m-decode``  –
LLM, disaggregated, N nodes (prefill)  ``m-pl`` + ``m-pw``         ``m-p``
LLM, disaggregated, N nodes (decode)   ``m-dl`` + ``m-dw``         ``m-d``
=====================================  ==========================  =====================

No generated name of one stage is a suffix of another of the same stage (``ldr``/``wkr``,
``pl``/``pw``/``dl``/``dw``, ``prefill``/``decode`` end differently); across stages the admission
rule ``clique-name-suffix`` reports clashes such as stages ``chat`` and ``rechat``.

Budgets (Grove webhook and operator quirks, grove-api.md §1.6): for every clique
``len(pcs) + len(group) + len(clique) ≤ 45``; its PodClique FQN
``<pcs>-<i>-[<group>-<j>-]<clique>`` ≤ 57; a pod hostname ``<fqn>-<podIndex>`` ≤ 63. When the
pipeline name is too long for them, the PodCliqueSet name is cut and given a stable 4-hex FNV-1a
suffix (``<prefix>-<hash>``), as Dynamo does for long DynamoGraphDeployment names. When even a
PodCliqueSet name of ``PCS_FLOOR`` characters would not fit beside a stage's cliques, the stage's
clique base name is shortened the same way (``short_name``): names are shortened, never refused.
The full names stay on the objects: ``roleName`` keeps the unshortened clique name and the label
``grove-pipelines.io/stage`` the stage's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from grove_pipelines.errors import CompileError

__all__ = [
    "CONTAINER_NAME_LIMIT",
    "FQN_LIMIT",
    "HOSTNAME_LIMIT",
    "NAME_BUDGET",
    "PCS_FLOOR",
    "CliqueSlot",
    "clique_fqn",
    "fnv_suffix",
    "max_pcs_length",
    "pcs_name",
    "short_name",
]

NAME_BUDGET = 45
FQN_LIMIT = 57
HOSTNAME_LIMIT = 63
CONTAINER_NAME_LIMIT = 63
_HASH_LEN = 4
PCS_FLOOR = 16
"""The shortest PodCliqueSet name stage shortening aims to leave room for (an 11-character prefix + hash)."""


@dataclass(frozen=True)
class CliqueSlot:
    """What the budgets need to know of one clique: its name, group, and largest indices."""

    clique: str
    group: str | None = None
    max_pods: int = 1
    max_group_replicas: int = 1


def clique_fqn(
    pcs: str, clique: str, *, group: str | None = None, pcs_index: int = 0, group_index: int = 0
) -> str:
    """The PodClique name Grove generates: ``<pcs>-<i>-<clique>`` or ``<pcs>-<i>-<group>-<j>-<clique>``."""
    if group is None:
        return f"{pcs}-{pcs_index}-{clique}"
    return f"{pcs}-{pcs_index}-{group}-{group_index}-{clique}"


def fnv_suffix(text: str) -> str:
    """First 4 hex digits of the 32-bit FNV-1a hash of ``text`` (stable across runs and machines)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"[:_HASH_LEN]


def short_name(name: str, length: int) -> str:
    """``name`` if it has at most ``length`` characters, else ``<prefix>-<fnv4 of name>`` of exactly that
    length or less (the prefix loses trailing dashes); ``""`` when no readable prefix fits."""
    if len(name) <= length:
        return name
    prefix = name[: max(length - _HASH_LEN - 1, 0)].rstrip("-")
    return f"{prefix}-{fnv_suffix(name)}" if prefix else ""


def _slack(slot: CliqueSlot, pcs_replicas: int) -> int:
    """The longest PodCliqueSet name this clique allows."""
    group_len = len(slot.group) if slot.group else 0
    budget = NAME_BUDGET - group_len - len(slot.clique)
    pcs_idx = len(str(max(pcs_replicas - 1, 0)))
    fqn_rest = 1 + pcs_idx + 1 + len(slot.clique)  # "-<i>-<clique>"
    if slot.group:
        fqn_rest += len(slot.group) + 1 + len(str(max(slot.max_group_replicas - 1, 0))) + 1
    pod_idx = len(str(max(slot.max_pods - 1, 0)))
    return min(budget, FQN_LIMIT - fqn_rest, HOSTNAME_LIMIT - fqn_rest - 1 - pod_idx)


def max_pcs_length(slots: Iterable[CliqueSlot], *, pcs_replicas: int = 1) -> tuple[int, CliqueSlot | None]:
    """The longest PodCliqueSet name every clique allows, and the clique that limits it most."""
    best, tightest = NAME_BUDGET, None
    for slot in slots:
        slack = _slack(slot, pcs_replicas)
        if tightest is None or slack < best:
            best, tightest = slack, slot
    return best, tightest


def pcs_name(
    name: str, slots: Iterable[CliqueSlot], *, pcs_replicas: int = 1, stage_of: dict[str, str] | None = None
) -> str:
    """``name`` if every budget holds, else ``<prefix>-<fnv4>``; ``CompileError`` if even that cannot fit.

    ``stage_of`` maps clique names to the stage that produced them, for the error message.
    """
    limit, tightest = max_pcs_length(slots, pcs_replicas=pcs_replicas)
    short = short_name(name, limit)
    if not short or not short[0].isalpha():
        assert tightest is not None
        stage = (stage_of or {}).get(tightest.clique, tightest.clique)
        where = f"scaling group {tightest.group!r} + " if tightest.group else ""
        raise CompileError(
            f"stage {stage!r}: its clique name ({where}{tightest.clique!r}) leaves no room for a PodCliqueSet "
            f"name within Grove's budget (pcs + group + clique <= {NAME_BUDGET}, PodClique name <= {FQN_LIMIT}); "
            "use a shorter stage name"
        )
    return short
