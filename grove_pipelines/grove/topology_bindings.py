"""ClusterTopologyBindings: the topology names a PodCliqueSet may reference, and their domain levels.

Grove's webhook (with topology-aware scheduling on) fetches the binding a PodCliqueSet's
``topologyName`` names and checks every packed domain against its ``spec.levels`` (broadest first).
Offline, the bindings come from ``validate --topology FILE``; ``deploy`` lists the live ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grove_pipelines import yamlio
from grove_pipelines.errors import ManifestError

__all__ = ["TopologyBinding", "bindings_from", "load_topology_bindings"]

_KIND = "ClusterTopologyBinding"


class _Level(BaseModel):
    model_config = ConfigDict(extra="ignore")
    domain: str
    key: str = ""


class TopologyBinding(BaseModel):
    """One ClusterTopologyBinding: its name and its domains, broadest first."""

    model_config = ConfigDict(extra="ignore")
    name: str
    levels: list[_Level] = Field(min_length=1)

    @property
    def domains(self) -> list[str]:
        return [level.domain for level in self.levels]


def bindings_from(docs: list[Any], *, source: str = "topology") -> dict[str, TopologyBinding]:
    """Binding name → binding, from parsed documents (``kind: List`` expanded, other kinds ignored)."""
    found: dict[str, TopologyBinding] = {}
    items: list[Any] = []
    for doc in docs:
        if (
            isinstance(doc, dict)
            and doc.get("kind", "").endswith("List")
            and isinstance(doc.get("items"), list)
        ):
            items += doc["items"]
        else:
            items.append(doc)
    for doc in items:
        if not isinstance(doc, dict) or doc.get("kind") != _KIND:
            continue
        meta, spec = doc.get("metadata"), doc.get("spec")
        try:
            binding = TopologyBinding.model_validate(
                {
                    "name": meta.get("name") if isinstance(meta, dict) else None,
                    "levels": spec.get("levels") if isinstance(spec, dict) else None,
                }
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ManifestError(f"{source}: a {_KIND}: {where}: {first['msg']}") from None
        found[binding.name] = binding
    return found


def load_topology_bindings(path: str | Path | None) -> dict[str, TopologyBinding]:
    """The bindings in ``path`` (none when ``path`` is ``None``); a file without any is an error."""
    if path is None:
        return {}
    found = bindings_from(yamlio.load_all_file(path), source=str(path))
    if not found:
        raise ManifestError(f"--topology {path}: no {_KIND} found")
    return found
