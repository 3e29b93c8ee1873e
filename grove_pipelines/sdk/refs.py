"""Finding the objects a function's body refers to: how edges are "found from the code".

A pipeline body that mentions ``retrieve`` or ``chat.complete`` calls those stages. We read the names
its code objects load (nested functions, lambdas and comprehensions included), resolve them against
the function's globals and closure, and look one attribute deep into modules (``tools.search``).
No code runs. A stage reached only through ``getattr`` or a container is not found: declare it with
``depends_on=``.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["referenced_objects"]


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _functions_of(target: Callable[..., Any] | type) -> list[types.FunctionType]:
    if isinstance(target, type):
        found = []
        for member in vars(target).values():
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, types.FunctionType):
                found.append(member)
        return found
    func = inspect.unwrap(target)
    return [func] if isinstance(func, types.FunctionType) else []


def referenced_objects(target: Callable[..., Any] | type) -> list[object]:
    """Objects named by ``target``'s code (a function, or every method of a class), in first-seen order."""
    seen: dict[int, object] = {}

    def add(obj: object) -> None:
        seen.setdefault(id(obj), obj)

    for func in _functions_of(target):
        scope = func.__globals__
        for cell in func.__closure__ or ():
            try:
                add(cell.cell_contents)
            except ValueError:  # empty cell
                continue
        for code in _code_objects(func.__code__):
            names = code.co_names
            for name in names:
                if name in scope:
                    value = scope[name]
                    add(value)
                    if isinstance(value, types.ModuleType):
                        for attr in names:
                            if attr in vars(value):
                                add(vars(value)[attr])
    return list(seen.values())
