"""What a manifest is admitted against: the Grove release, the operator's configuration, the bindings.

One value passed through every admission rule, so ``validate`` (from ``--grove-version``,
``--grove-config`` and ``--topology``) and ``deploy`` (from the live cluster) judge with the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grove_pipelines.grove.operator_config import OperatorConfig
from grove_pipelines.grove.releases import GroveRelease, grove_release
from grove_pipelines.grove.topology_bindings import TopologyBinding

__all__ = ["GroveCluster"]


@dataclass(frozen=True)
class GroveCluster:
    """The admission context; the default is a default Helm install of the default release, no bindings."""

    release: GroveRelease = field(default_factory=grove_release)
    config: OperatorConfig = field(default_factory=OperatorConfig)
    bindings: dict[str, TopologyBinding] = field(default_factory=dict)
