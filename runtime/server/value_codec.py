"""Typed values across a hop: Python values to JSON, and JSON back into a stage's parameter and return types.

A value crosses pods (or Ray handles) as JSON (:func:`encode`, or :func:`encode_json` straight to
the bytes of a stage call or its answer); the callee validates the arguments
against the stage's signature (:class:`ArgBinder`), the caller the result against its return
annotation (:class:`ResultDecoder`), so models and dataclasses arrive as themselves.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, SchemaValidator, to_json, to_jsonable_python

from grove_pipelines.sdk import Stage

__all__ = ["ArgBinder", "ResultDecoder", "encode", "encode_json", "result_decoder", "type_hints"]


def encode(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (models, dataclasses, tuples, sets...); unknown objects become strings.

    Infinite and NaN floats become ``null``, as pydantic writes them: JSON has no such numbers.
    """
    return to_jsonable_python(value, serialize_unknown=True, inf_nan_mode="null")


def encode_json(value: Any) -> bytes:
    """``encode(value)`` as JSON bytes (UTF-8), in one pass instead of a copy and then ``json.dumps``.

    What one pass refuses takes the two-pass way, which answers as :func:`encode` always did: an
    object pydantic does not know (its ``str``), a lone surrogate (escaped as ``\\udXXX``: UTF-8
    cannot hold it), a value that contains itself (``ValueError``).
    """
    try:
        return to_json(value, inf_nan_mode="null")
    except PydanticSerializationError:
        return json.dumps(encode(value)).encode()


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """``func``'s resolved annotations, or none when a forward reference cannot be resolved."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # noqa: BLE001  (unresolvable forward references: validate nothing, still serve)
        return {}


class ArgBinder:
    """Turns JSON arguments of a remote stage call back into the types the stage's signature declares."""

    def __init__(self, func: Callable[..., Any], *, skip_self: bool = False) -> None:
        sig = inspect.signature(func)
        params = list(sig.parameters.values())[1 if skip_self else 0 :]
        self.signature = sig.replace(parameters=params)
        hints = type_hints(func)
        self._adapters = {p.name: TypeAdapter(hints[p.name]) for p in params if p.name in hints}
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self._every_positional: list[Callable[[Any], Any] | None] | None = (
            [_validate_of(self._adapters[p.name]) if p.name in self._adapters else None for p in params]
            if all(p.kind in positional for p in params)
            else None
        )
        """One validation (or None) per parameter, when a call may name them all by position."""

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Validated ``(args, kwargs)``; raises ``TypeError`` or ``ValidationError`` on a mismatch."""
        every = self._every_positional
        if (
            every is not None and not kwargs and len(args) == len(every)
        ):  # what the signature's bind would give
            return tuple([v if a is None else a(v) for a, v in zip(every, args, strict=True)]), {}
        bound = self.signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            adapter = self._adapters.get(name)
            param = self.signature.parameters[name]
            if adapter is not None and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                bound.arguments[name] = adapter.validate_python(value)
        return bound.args, bound.kwargs


@functools.cache
def result_decoder(stage: Stage) -> ResultDecoder:
    """The (cached) decoder of a stage's results, shared by every transport that calls it remotely."""
    return ResultDecoder(stage.callable())


class ResultDecoder:
    """Turns a remote stage's JSON result back into its return annotation's type, when it has one."""

    def __init__(self, func: Callable[..., Any]) -> None:
        annotation = type_hints(func).get("return")
        self._validate = _validate_of(TypeAdapter(annotation)) if annotation not in (None, Any) else None

    def decode(self, value: Any) -> Any:
        """The typed result, or the JSON value as is if it does not fit the annotation."""
        if self._validate is None:
            return value
        try:
            return self._validate(value)
        except ValidationError:
            return value


def _validate_of(adapter: TypeAdapter[Any]) -> Callable[[Any], Any]:
    """``adapter.validate_python`` with its defaults: the built validator's own method when there is one
    (the adapter's wrapper passes eight default options on, a Python frame per value)."""
    validator = adapter.validator
    return validator.validate_python if isinstance(validator, SchemaValidator) else adapter.validate_python
