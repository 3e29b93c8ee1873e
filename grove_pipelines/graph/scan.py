"""The reference scan: every stage a body can reach through the user's own code, found without running it.

Starting at a pipeline body (or a Python stage's code), the scan reads the names each function's
bytecode loads and follows what they resolve to, with a visited set:

* functions (sync and async), their nested functions, lambdas and comprehensions, to any depth, as
  long as they are the user's code (not the standard library, site-packages or grove-pipelines);
* attribute chains on modules, classes and objects (``tools.search``, ``helpers.retrieve``,
  ``Agent.plan``), and in a method every attribute its class defines (``self.helper()``,
  ``cls.tool``), staticmethods, classmethods and properties included;
* classes (every method) and bound methods (their function and their object);
* containers in globals, closures and default arguments: list, tuple, set, frozenset, dict (keys
  and values), nested to any depth, and the attributes of simple objects one level deep (a
  dataclass or a namespace of tools);
* ``functools.partial`` (function and bound arguments) and wrappers (``__wrapped__``, closures).

A stage reached is a callee; its own code is scanned separately, as its own caller. Everything else
(non-stage callables in a registry, foreign objects) is followed if it is user code and otherwise
ignored. Nothing runs: the scan reads code objects, ``__dict__``s and closure cells only.
"""

from __future__ import annotations

import builtins
import dis
import functools
import importlib.util
import inspect
import os
import sys
import sysconfig
import types
from collections.abc import Iterator
from dataclasses import dataclass, is_dataclass
from typing import Any

from grove_pipelines.graph.origin import Origin, code_origin
from grove_pipelines.sdk import LLM, Pipeline, Stage

__all__ = ["Reached", "is_user_file", "scan"]

AnyStage = Stage | LLM

_LOADS_NAME = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_LOADS_CELL = frozenset({"LOAD_DEREF", "LOAD_CLASSDEREF", "LOAD_CLOSURE"})
_LOADS_ATTR = frozenset({"LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM"})
_CONTAINERS = (list, tuple, set, frozenset)
_ATOMS = (str, bytes, int, float, complex, bool, type(None))
_FOREIGN_ROOTS: tuple[str, ...] = ()


def _foreign_roots() -> tuple[str, ...]:
    global _FOREIGN_ROOTS
    if not _FOREIGN_ROOTS:
        paths = sysconfig.get_paths()
        roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
        roots |= {p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")}
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # grove_pipelines/
        roots.add(here)
        runtime = importlib.util.find_spec("runtime")  # our pod-side package (found, not imported)
        if runtime is not None and runtime.origin:
            roots.add(os.path.dirname(os.path.abspath(runtime.origin)))
        _FOREIGN_ROOTS = tuple(sorted(os.path.join(os.path.realpath(r), "") for r in roots))
    return _FOREIGN_ROOTS


@functools.lru_cache(maxsize=4096)
def is_user_file(filename: str) -> bool:
    """Whether code in ``filename`` is the user's (not the standard library, site-packages or ours)."""
    if not filename or filename.startswith("<frozen"):
        return False
    if not os.path.isabs(filename):
        return True  # "<string>", exec'd or generated code: the user's
    real = os.path.realpath(filename)
    return not real.startswith(_foreign_roots())


def _is_user_object(obj: object) -> bool:
    module = sys.modules.get(getattr(type(obj), "__module__", "") or "")
    return module is None or _is_user_module(module)


def _is_user_module(module: types.ModuleType) -> bool:
    filename = getattr(module, "__file__", None)
    if filename is None:
        return module.__name__ not in sys.builtin_module_names and module.__name__.split(".")[0] not in (
            sys.stdlib_module_names
        )
    return is_user_file(str(filename))


def _is_user_class(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    if module is None:
        return cls.__module__.split(".")[0] not in (*sys.stdlib_module_names, "builtins")
    return _is_user_module(module)


@dataclass(frozen=True)
class Reached:
    """A stage the scan reached, and where the reference that leads to it is."""

    stage: AnyStage
    origin: Origin


@dataclass(frozen=True)
class _Instr:
    op: str
    arg: Any
    line: int


_Decoded = tuple[tuple[types.CodeType, tuple[_Instr, ...]], ...]
_DECODED: dict[int, tuple[types.CodeType, _Decoded]] = {}


def _instructions(code: types.CodeType) -> _Decoded:
    """Every code object nested in ``code`` (itself first) with its instructions and their lines.

    Cached by identity (code objects compare equal across files), holding the code object alive.
    """
    cached = _DECODED.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    out: list[tuple[types.CodeType, tuple[_Instr, ...]]] = []
    for inner in _code_objects(code):
        line = inner.co_firstlineno
        found = []
        if not inner.co_names and not inner.co_freevars:
            out.append((inner, ()))  # loads no global, attribute or closure: nothing to resolve
            continue
        for ins in dis.get_instructions(inner):
            if ins.positions is not None and ins.positions.lineno is not None:
                line = ins.positions.lineno
            found.append(_Instr(ins.opname, ins.argval, line))
        out.append((inner, tuple(found)))
    result = tuple(out)
    _DECODED[id(code)] = (code, result)
    return result


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _static_attr(obj: object, name: str) -> object:
    """``obj.name`` without running descriptors or ``__getattr__`` (a sentinel when absent)."""
    try:
        value = inspect.getattr_static(obj, name)
    except AttributeError:
        return _MISSING
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if isinstance(value, property):
        return value.fget
    return value


_MISSING = object()


_Item = tuple[object, Origin, "type | None", int]


class _Scanner:
    """One scan from one root; ``reached`` keeps the first origin of each stage, in scan order."""

    def __init__(self, root: object) -> None:
        self.root = root
        self.reached: dict[int, Reached] = {}
        self.seen: set[tuple[int, int]] = set()
        self.stack: list[_Item] = []
        self.batch: list[_Item] = []

    def push(self, obj: object, origin: Origin, owner: type | None = None, depth: int = 0) -> None:
        self.batch.append((obj, origin, owner, depth))

    def run(self) -> list[Reached]:
        """Depth first, in reading order: stages come out in the order the code first reaches them."""
        while self.stack:
            self.visit(*self.stack.pop())
            self.stack.extend(reversed(self.batch))
            self.batch.clear()
        return list(self.reached.values())

    def visit(self, obj: object, origin: Origin, owner: type | None, depth: int) -> None:
        if isinstance(obj, (Stage, LLM)):
            if obj is not self.root and id(obj) not in self.reached:
                self.reached[id(obj)] = Reached(obj, origin)
            return
        if isinstance(obj, (*_ATOMS, Pipeline, types.ModuleType)):
            return
        key = (id(obj), id(owner))
        if key in self.seen:
            return
        self.seen.add(key)
        if isinstance(obj, types.FunctionType):
            self.function(obj, origin, owner)
        elif isinstance(obj, types.MethodType):
            holder = obj.__self__
            self.push(obj.__func__, origin, holder if isinstance(holder, type) else type(holder))
            self.push(holder, origin, None, depth)
        elif isinstance(obj, (staticmethod, classmethod)):
            self.push(obj.__func__, origin, owner)
        elif isinstance(obj, functools.partial):
            for part in (obj.func, *obj.args, *obj.keywords.values()):
                self.push(part, origin, owner, depth)
        elif isinstance(obj, dict):
            for pair in dict.items(obj):
                for item in pair:
                    if not isinstance(item, _ATOMS):
                        self.push(item, origin, None, depth)
        elif isinstance(obj, _CONTAINERS):
            base: Any = next(kind for kind in _CONTAINERS if isinstance(obj, kind))
            for item in base.__iter__(obj):  # the builtin's iterator: a subclass's __iter__ is user code
                if not isinstance(item, _ATOMS):
                    self.push(item, origin, None, depth)
        elif isinstance(obj, type):
            self.klass(obj, origin)
        elif isinstance(obj, property):
            self.push(obj.fget, origin, owner)
        else:
            self.instance(obj, origin, depth)

    def function(self, func: types.FunctionType, origin: Origin, owner: type | None) -> None:
        wrapped = func.__dict__.get("__wrapped__")
        if wrapped is not None:
            self.push(wrapped, origin, owner)
        code = func.__code__
        if not is_user_file(code.co_filename):
            return
        where = code_origin(func.__qualname__, code)
        for default in (*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()):
            self.push(default, where)
        cells = dict(zip(code.co_freevars, func.__closure__ or (), strict=False))
        for inner, instructions in _instructions(code):
            self.code(func, inner, instructions, cells, owner)

    def code(
        self,
        func: types.FunctionType,
        inner: types.CodeType,
        instructions: tuple[_Instr, ...],
        cells: dict[str, types.CellType],
        owner: type | None,
    ) -> None:
        scope = func.__globals__
        qualname = inner.co_qualname if inner is not func.__code__ else func.__qualname__
        current: object = _MISSING
        for ins in instructions:
            value: object = _MISSING
            if ins.op in _LOADS_NAME:
                value = scope.get(ins.arg, _MISSING)
                if value is _MISSING:
                    value = vars(builtins).get(ins.arg, _MISSING)
                    if value is not _MISSING:
                        current = value
                        continue
            elif ins.op in _LOADS_CELL and ins.arg in cells:
                value = _cell(cells[ins.arg])
            elif ins.op in _LOADS_ATTR:
                if current is not _MISSING:
                    value = self.attribute(current, ins.arg)
                if value is _MISSING and owner is not None:
                    value = _static_attr(owner, ins.arg)
                    if value is not _MISSING:
                        self.push(value, code_origin(qualname, inner, ins.line), owner)
                        current = value
                        continue
            elif ins.op == "IMPORT_NAME":
                value = sys.modules.get(ins.arg, _MISSING)
                current = value
                continue
            if value is not _MISSING:
                self.push(value, code_origin(qualname, inner, ins.line), _owner_of(current, value))
            current = value

    def attribute(self, obj: object, name: str) -> object:
        if isinstance(obj, types.ModuleType):
            return vars(obj).get(name, _MISSING) if _is_user_module(obj) else _MISSING
        if isinstance(obj, (Stage, LLM)) or not (
            isinstance(obj, type) and _is_user_class(obj) or _is_user_object(obj)
        ):
            return _MISSING
        return _static_attr(obj, name)

    def klass(self, cls: type, origin: Origin) -> None:
        for base in cls.__mro__:
            if base is object or not _is_user_class(base):
                continue
            for member in vars(base).values():
                self.push(member, origin, cls)

    def instance(self, obj: object, origin: Origin, depth: int) -> None:
        if not _is_user_object(obj) and not isinstance(obj, types.SimpleNamespace):
            return
        if _is_user_class(type(obj)):
            self.push(type(obj), origin)
        if depth >= 1:
            return
        try:
            attrs = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            attrs = {}
        if is_dataclass(obj) and not attrs:
            attrs = {
                f: inspect.getattr_static(obj, f, None) for f in getattr(obj, "__dataclass_fields__", {})
            }
        for value in dict(attrs).values():
            self.push(value, origin, None, depth + 1)


def _owner_of(current: object, value: object) -> type | None:
    """The class a function reached as ``current.value`` is a method of, if any."""
    if current is _MISSING or not isinstance(value, types.FunctionType):
        return None
    if isinstance(current, type):
        return current
    if isinstance(current, types.ModuleType):
        return None
    return type(current)


def _cell(cell: types.CellType) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def scan(root: Stage | Pipeline) -> list[Reached]:
    """The stages ``root``'s code reaches (a pipeline body, or a Python stage's function or class)."""
    target = root.target if isinstance(root, Stage) else root.func
    scanner = _Scanner(root)
    name = getattr(target, "__qualname__", repr(target))
    start = (
        code_origin(name, target.__code__) if isinstance(target, types.FunctionType) else Origin(name, "", 0)
    )
    scanner.stack.append((target, start, None, 0))
    return scanner.run()
