"""The one pydantic base of every Kubernetes/Grove mirror model, and the dump to plain data.

Attributes are snake_case; the wire names are camelCase aliases generated once here (a few
Kubernetes names that are not plain camelCase, such as ``clusterIP``, override the alias per field).
Unknown fields are errors, as strict server-side field validation makes them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["KubeModel", "to_dict"]


class KubeModel(BaseModel):
    """Base of the mirrors: camelCase aliases, populate by name, unknown fields forbidden."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        use_enum_values=True,
    )


def to_dict(model: BaseModel) -> dict[str, Any]:
    """The manifest form: wire names, no ``None`` fields, JSON types."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")
