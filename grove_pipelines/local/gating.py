"""``startsAfter`` as Grove's init container enforces it (``operator/initc/internal/wait.go``).

A pod with startup dependencies waits, before its main containers, until for every parent
PodClique at least ``minAvailable`` (of the parent's template) pods whose name starts with the
parent's FQN are Ready. Once satisfied it never re-checks (grove-runtime notes §4.2).
"""

from __future__ import annotations

from collections.abc import Iterable

from grove_pipelines.local.identity import StartupDependency

__all__ = ["unmet"]


def unmet(dependencies: Iterable[StartupDependency], ready_pods: Iterable[str]) -> list[StartupDependency]:
    """The dependencies not yet satisfied by the names of the Ready pods."""
    ready = list(ready_pods)
    return [dep for dep in dependencies if sum(name.startswith(dep.prefix) for name in ready) < dep.ready]
