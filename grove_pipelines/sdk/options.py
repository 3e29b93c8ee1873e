"""Turning decorator keyword arguments into specs, with errors that name the stage and the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from grove_pipelines.errors import DefinitionError

__all__ = ["build_spec", "default_name"]

SpecT = TypeVar("SpecT", bound=BaseModel)


def default_name(python_name: str) -> str:
    """A stage name from a Python identifier: ``retrieve_docs`` -> ``retrieve-docs``."""
    return python_name.strip("_").replace("_", "-").lower()


def build_spec(model: type[SpecT], what: str, name: str, options: dict[str, Any]) -> SpecT:
    """Validate ``options`` into ``model``; the first problem becomes a ``DefinitionError`` naming field and stage."""
    try:
        return model(name=name, **options)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"]) or "options"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown option"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise DefinitionError(f"{what} {name!r}: {field}: {message}{more}", stage=name, field=field) from None
