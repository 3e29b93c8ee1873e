"""Property: on random module structures the scan finds exactly the stages the body can reach.

Each example writes a package: stages in ``st``, helpers (functions and lambdas calling stages,
helpers and registries) split over two modules ``a`` and ``b``, registries (dict, list, nested) in
``reg``, the pipeline in ``main``. The expected set is computed independently, by a breadth-first
walk over the generated structure; decoys are whatever the body cannot reach.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grove_pipelines.graph.scan import scan

pytestmark = pytest.mark.timeout(120)

_COUNTER = itertools.count()


@dataclass(frozen=True)
class Structure:
    stages: int
    helpers: tuple[tuple[str, frozenset[str]], ...]  # (kind, references) per helper
    registries: tuple[tuple[str, frozenset[str]], ...]  # (kind, members) per registry
    body: frozenset[str]


@st.composite
def structures(draw: st.DrawFn) -> Structure:
    n_stages = draw(st.integers(1, 6))
    n_helpers = draw(st.integers(0, 6))
    n_regs = draw(st.integers(0, 3))
    stages = [f"s{i}" for i in range(n_stages)]
    helpers = [f"h{i}" for i in range(n_helpers)]
    regs = [f"r{i}" for i in range(n_regs)]
    anything = stages + helpers + regs
    pick = st.frozensets(st.sampled_from(anything), max_size=4)
    helper_specs = tuple((draw(st.sampled_from(["def", "lambda"])), draw(pick)) for _ in helpers)
    members = st.frozensets(st.sampled_from(stages + helpers), max_size=4)
    reg_specs = tuple((draw(st.sampled_from(["dict", "list", "nested"])), draw(members)) for _ in regs)
    return Structure(n_stages, helper_specs, reg_specs, draw(pick))


def _expr(name: str) -> str:
    module = {"s": "st", "r": "reg"}.get(name[0]) or ("a" if int(name[1:]) % 2 == 0 else "b")
    return f"{module}.{name}"


def _write(root: Path, package: str, s: Structure) -> None:
    pkg = root / package
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    stages = "".join(
        f"\n@stage(name='{package}-s{i}')\nasync def s{i}(x: int) -> int:\n    return x\n"
        for i in range(s.stages)
    )
    (pkg / "st.py").write_text(f"from grove_pipelines import stage\n{stages}")
    for module, parity in (("a", 0), ("b", 1)):
        text = ""
        for i, (kind, refs) in enumerate(s.helpers):
            if i % 2 != parity:
                continue
            items = ", ".join(_expr(r) for r in sorted(refs))
            if kind == "def":
                text += f"\nasync def h{i}() -> object:\n    return [{items}]\n"
            else:
                text += f"\nh{i} = lambda: [{items}]\n"
        text += (
            f"\nfrom {package} import a, b, reg, st  # noqa: E402  (after the helpers: circular imports)\n"
        )
        (pkg / f"{module}.py").write_text(text)
    regs = ""
    for i, (kind, members) in enumerate(s.registries):
        items = [_expr(m) for m in sorted(members)]
        if kind == "dict":
            regs += f"r{i} = {{{', '.join(f'{n!r}: {e}' for n, e in enumerate(items))}}}\n"
        elif kind == "list":
            regs += f"r{i} = [{', '.join(items)}]\n"
        else:
            regs += f"r{i} = {{'outer': [({', '.join(items)}{',' if items else ''})]}}\n"
    (pkg / "reg.py").write_text(f"from {package} import a, b, st\n\n{regs}")
    body = ", ".join(_expr(r) for r in sorted(s.body))
    (pkg / "main.py").write_text(
        f"from grove_pipelines import pipeline\nfrom {package} import a, b, reg, st\n\n"
        f"@pipeline(name='p')\nasync def body() -> object:\n    return [{body}]\n"
    )


def _reachable(s: Structure) -> set[str]:
    edges = {f"h{i}": refs for i, (_, refs) in enumerate(s.helpers)}
    edges |= {f"r{i}": members for i, (_, members) in enumerate(s.registries)}
    seen: set[str] = set()
    todo = list(s.body)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(edges.get(node, ()))
    return {n for n in seen if n.startswith("s")}


@pytest.fixture(scope="module")
def package_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="scanprop") as folder:
        sys.path.insert(0, folder)
        try:
            yield Path(folder)
        finally:
            sys.path.remove(folder)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(structure=structures())
def test_scan_finds_exactly_the_reachable_stages(package_root: Path, structure: Structure) -> None:
    package = f"scanpkg{next(_COUNTER)}"
    _write(package_root, package, structure)
    try:
        main = importlib.import_module(f"{package}.main")
        found = {hit.stage.name.removeprefix(f"{package}-") for hit in scan(main.body)}
    finally:
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]
    assert found == _reachable(structure)
