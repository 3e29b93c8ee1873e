"""JSON schemas from Python signatures: a pipeline's request model and the schema of its result.

The pipeline function's signature is the API: ``async def rag(question: str, k: int = 2) -> Answer``
becomes a request body ``{"question": ..., "k": ..., "stream": false}`` validated by pydantic (unknown
fields refused), and a result schema from the return annotation. Turning the JSON values of a stage
call back into these types is ``runtime.server.value_codec``'s.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from grove_pipelines.errors import DefinitionError
from runtime.server.value_codec import type_hints

__all__ = [
    "RESERVED_FIELDS",
    "input_model",
    "request_schema",
    "result_schema",
]

RESERVED_FIELDS = ("stream",)
"""Request fields the server owns; a pipeline parameter may not take these names."""


def input_model(name: str, func: Callable[..., Any]) -> type[BaseModel]:
    """The request body model of a pipeline: its parameters plus ``stream``."""
    hints = type_hints(func)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in RESERVED_FIELDS:
            raise DefinitionError(
                f"pipeline {name!r}: parameter {param.name!r} is reserved by the server; rename it"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    fields["stream"] = (bool, False)
    title = "".join(part.capitalize() for part in name.split("-")) + "Request"
    return create_model(title, __config__=ConfigDict(extra="forbid"), **fields)


REF_TEMPLATE = "#/components/schemas/{model}"


def split_defs(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(schema, definitions)``: nested models moved out, for OpenAPI's ``components/schemas``."""
    schema = dict(schema)
    return schema, schema.pop("$defs", {})


def request_schema(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request model's JSON schema (refs point into ``components/schemas``) and its definitions."""
    return split_defs(model.model_json_schema(ref_template=REF_TEMPLATE))


def result_schema(
    func: Callable[..., Any], *, components: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of what the pipeline returns (any JSON when it is not annotated), and its definitions.

    With ``components=False`` the schema stands alone (``$defs`` inline) and no definitions are split off.
    """
    annotation = type_hints(func).get("return")
    if annotation is None:
        return {}, {}
    try:
        if not components:
            return TypeAdapter(annotation).json_schema(), {}
        schema, defs = split_defs(TypeAdapter(annotation).json_schema(ref_template=REF_TEMPLATE))
    except Exception:  # noqa: BLE001  (a type pydantic cannot describe: document "any JSON")
        return {}, {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        defs[annotation.__name__] = schema
        schema = {"$ref": REF_TEMPLATE.format(model=annotation.__name__)}
    return schema, defs
