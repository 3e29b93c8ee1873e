"""Resolving a pipeline reference: ``path/file.py[:name]`` or ``package.module[:name]``.

Importing user code is where most user mistakes surface (missing file, syntax error, an exception at
import, no pipeline, an ambiguous or unknown name); each becomes one ``LoadError`` line.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from grove_pipelines.errors import GrovePipelinesError, LoadError
from grove_pipelines.graph.build import build_graph
from grove_pipelines.graph.model import PipelineGraph
from grove_pipelines.sdk import LLM, Pipeline, Stage

__all__ = ["LoadedPipeline", "load_graph", "load_pipeline", "split_ref"]


@dataclass(frozen=True)
class LoadedPipeline:
    """A pipeline, the module it came from, and the reference pods use to load it again."""

    pipeline: Pipeline
    module: ModuleType
    source: str

    def stages(self) -> list[Stage | LLM]:
        """Every stage object defined at the module's top level."""
        return [obj for obj in vars(self.module).values() if isinstance(obj, (Stage, LLM))]

    def graph(self) -> PipelineGraph:
        """The checked call graph: one scan of the user's code, keeping the stage objects it found."""
        return build_graph(self.pipeline, self.stages())


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"a/b.py:rag"`` -> ``("a/b.py", "rag")``; ``"pkg.mod"`` -> ``("pkg.mod", None)``."""
    target, sep, name = ref.rpartition(":")
    if not sep or not target or os.sep in name or name.endswith(".py"):
        return ref, None
    return target, name or None


def _portable_source(path: Path) -> str:
    """The file as pods will see it: relative to the working directory (the image's workdir)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise LoadError(f"no such file: {path}")
    module_name = path.stem.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    _run_import(lambda: spec.loader.exec_module(module), str(path))
    return module


def _import_module(name: str) -> ModuleType:
    result: list[ModuleType] = []
    _run_import(lambda: result.append(importlib.import_module(name)), name)
    return result[0]


def _run_import(action: object, what: str) -> None:
    try:
        action()  # type: ignore[operator]
    except GrovePipelinesError as exc:
        raise LoadError(f"{what}: {exc}") from exc
    except SyntaxError as exc:
        where = what if exc.filename is None or Path(exc.filename).name == Path(what).name else exc.filename
        raise LoadError(f"{where}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except ModuleNotFoundError as exc:
        raise LoadError(f"cannot import {what}: {exc}") from exc
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        raise LoadError(f"importing {what} failed at {where}: {type(exc).__name__}: {exc}") from exc


def load_pipeline(ref: str) -> LoadedPipeline:
    """Import the module of ``ref`` and pick its pipeline (by pipeline name or variable name)."""
    target, wanted = split_ref(ref)
    is_file = target.endswith(".py") or os.sep in target or Path(target).is_file()
    module = _import_file(Path(target)) if is_file else _import_module(target)
    source = _portable_source(Path(target)) if is_file else target
    found = {var: obj for var, obj in vars(module).items() if isinstance(obj, Pipeline)}
    if not found:
        raise LoadError(f"{target} defines no @pipeline")
    if wanted is None:
        if len(found) > 1:
            names = ", ".join(sorted(p.name for p in found.values()))
            raise LoadError(f"{target} defines several pipelines ({names}); choose one with {target}:NAME")
        chosen = next(iter(found.values()))
    else:
        matches = [p for var, p in found.items() if wanted in (var, p.name)]
        if not matches:
            names = ", ".join(sorted(p.name for p in found.values()))
            raise LoadError(f"{target} has no pipeline {wanted!r}; it defines: {names}")
        chosen = matches[0]
    chosen.spec = chosen.spec.model_copy(update={"module": source})
    return LoadedPipeline(chosen, module, source)


def load_graph(ref: str) -> PipelineGraph:
    """The checked call graph of the pipeline ``ref`` names."""
    return load_pipeline(ref).graph()
