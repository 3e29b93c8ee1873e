"""`Origin`: where an edge of the graph comes from, so ``graph --explain`` and errors can point at code.

An edge is either found by the reference scan (the function whose code names the callee, directly or
through a container, and the line) or declared (``depends_on=`` on a stage, ``calls=`` on a pipeline).
"""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FunctionType

__all__ = ["DECLARED", "Origin", "code_origin", "definition_origin", "display_path"]


def display_path(filename: str) -> str:
    """A source file as a user reads it: relative to the working directory when inside it."""
    return _relative(filename, os.getcwd())


@functools.lru_cache(maxsize=4096)
def _relative(filename: str, cwd: str) -> str:
    if not os.path.isabs(filename):
        return filename
    try:
        return Path(filename).relative_to(cwd).as_posix()
    except ValueError:
        return filename


@dataclass(frozen=True)
class Origin:
    """The function whose code refers to the callee and the line, or ``declared`` for a declared edge."""

    function: str = ""
    file: str = ""
    line: int = 0
    declared: bool = False

    @property
    def where(self) -> str:
        """``file:line`` (or ``declared``)."""
        return "declared" if self.declared else f"{self.file}:{self.line}"

    def __str__(self) -> str:
        if self.declared:
            return "declared"
        return f"{self.function} at {self.file}:{self.line}"


DECLARED = Origin(declared=True)


def code_origin(function: str, code: CodeType, line: int | None = None) -> Origin:
    """The origin of a reference at ``line`` (default: the first line) of ``code``."""
    return Origin(function, display_path(code.co_filename), line or code.co_firstlineno)


def definition_origin(target: object) -> Origin | None:
    """Where a function or class is defined (None when Python cannot tell, e.g. built in C)."""
    target = inspect.unwrap(target) if callable(target) else target
    if isinstance(target, FunctionType):
        return code_origin(target.__qualname__, target.__code__)
    if isinstance(target, type):
        try:
            filename = inspect.getsourcefile(target) or ""
            _, line = inspect.getsourcelines(target)
        except (OSError, TypeError):
            return None
        return Origin(target.__qualname__, display_path(filename), line)
    return None
