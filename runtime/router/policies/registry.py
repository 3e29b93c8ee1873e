"""The one table of routing policies: name → (parameters model, factory).

Names are the ones users type (``--policy least_loaded``); a dash is read as an underscore. An
unknown name or an invalid parameter stops the router at startup with a message naming the policy;
there is no silent fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from runtime.errors import RouterConfigError
from runtime.router.policies.pickers import round_robin
from runtime.router.policies.policy import Policy
from runtime.router.policies.scorers import least_loaded, prefix

__all__ = ["POLICIES", "PolicyEntry", "make_policy"]


@dataclass(frozen=True)
class PolicyEntry:
    """How to build one named policy."""

    params: type[BaseModel]
    build: Callable[[Any], Policy]
    summary: str


POLICIES: dict[str, PolicyEntry] = {
    "round_robin": PolicyEntry(round_robin.RoundRobinParams, round_robin.build, "each worker in turn"),
    "least_loaded": PolicyEntry(
        least_loaded.LeastLoadedParams, least_loaded.build, "fewest requests (or tokens) in flight"
    ),
    "prefix": PolicyEntry(
        prefix.PrefixParams, prefix.build, "prefix-cache affinity with a load guard (Dynamo's cost)"
    ),
}


def make_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    """Build the policy registered as ``name`` with ``params``.

    Raises:
        RouterConfigError: unknown name (the message lists the known ones) or invalid parameters.
    """
    key = name.strip().lower().replace("-", "_")
    entry = POLICIES.get(key)
    if entry is None:
        raise RouterConfigError(f"unknown routing policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    try:
        parsed = entry.params.model_validate(params or {})
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}" for e in exc.errors())
        raise RouterConfigError(f"policy {key}: invalid parameters: {details}") from None
    return entry.build(parsed)
