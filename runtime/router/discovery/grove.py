"""Which pods are a clique's workers, from the variables Grove injects (grove-api notes §4).

Pure naming, no I/O: the label selector that lists a clique's pods through the Kubernetes API
(§4.3) and the stable DNS names of its pods under the PodCliqueSet replica's headless service (§4.2).

* standalone clique ``prefill``: pods labelled ``grove.io/podclique=<pcs>-<i>-prefill``, named
  ``<pcs>-<i>-prefill-<k>.<headless service>``;
* multi-node role in scaling group ``prefill`` with leader clique ``pleader``: one leader per group
  replica j, labelled ``grove.io/podclique=<pcs>-<i>-prefill-<j>-pleader``, named
  ``<pcs>-<i>-prefill-<j>-pleader-0.<headless service>``. Only leaders serve HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.errors import DiscoveryError

__all__ = ["CliqueTarget", "GroveEnv"]

_REQUIRED = ("GROVE_PCS_NAME", "GROVE_PCS_INDEX", "GROVE_HEADLESS_SERVICE")


@dataclass(frozen=True)
class GroveEnv:
    """The PodCliqueSet replica this pod belongs to."""

    pcs_name: str
    pcs_index: int
    headless_service: str  # <pcs>-<i>.<namespace>.svc.cluster.local

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GroveEnv:
        """Read ``GROVE_PCS_NAME``, ``GROVE_PCS_INDEX`` and ``GROVE_HEADLESS_SERVICE``.

        Raises:
            DiscoveryError: a variable is missing (the router does not run in a Grove pod) or malformed.
        """
        missing = [name for name in _REQUIRED if not env.get(name)]
        if missing:
            raise DiscoveryError(
                f"--discovery grove needs the Grove pod variables; missing: {', '.join(missing)}"
            )
        try:
            index = int(env["GROVE_PCS_INDEX"])
        except ValueError:
            raise DiscoveryError(f"GROVE_PCS_INDEX is not a number: {env['GROVE_PCS_INDEX']!r}") from None
        return cls(env["GROVE_PCS_NAME"], index, env["GROVE_HEADLESS_SERVICE"].rstrip("."))

    @property
    def namespace(self) -> str | None:
        """The namespace, read from the headless service's FQDN."""
        parts = self.headless_service.split(".")
        return parts[1] if len(parts) > 2 else None

    @property
    def prefix(self) -> str:
        """``<pcs>-<i>``: the start of every clique FQN of this replica."""
        return f"{self.pcs_name}-{self.pcs_index}"


@dataclass(frozen=True)
class CliqueTarget:
    """The serving pods of one role: a standalone clique, or the leader clique of a scaling group."""

    role: str
    clique: str
    group: str | None = None

    def selector(self, env: GroveEnv) -> str:
        """Label selector for the Kubernetes API (groups are narrowed further by :meth:`matches`)."""
        base = f"app.kubernetes.io/part-of={env.pcs_name},grove.io/podcliqueset-replica-index={env.pcs_index}"
        if self.group is None:
            return f"{base},grove.io/podclique={env.prefix}-{self.clique}"
        return f"{base},grove.io/podcliquescalinggroup={env.prefix}-{self.group}"

    def matches(self, env: GroveEnv, labels: Mapping[str, str]) -> bool:
        """True for the pods of this target among those the selector returned."""
        podclique = labels.get("grove.io/podclique", "")
        if self.group is None:
            return podclique == f"{env.prefix}-{self.clique}"
        pattern = rf"{re.escape(env.prefix)}-{re.escape(self.group)}-\d+-{re.escape(self.clique)}"
        return re.fullmatch(pattern, podclique) is not None

    def dns_name(self, env: GroveEnv, k: int) -> str:
        """The k-th serving pod's stable name: pod index k, or for a group the leader of group replica k."""
        if self.group is None:
            return f"{env.prefix}-{self.clique}-{k}.{env.headless_service}"
        return f"{env.prefix}-{self.group}-{k}-{self.clique}-0.{env.headless_service}"
