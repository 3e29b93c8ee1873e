"""The reference scan: every pattern of the toolpkg fixture, declared edges, and what it must not follow."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from grove_pipelines import pipeline, stage
from grove_pipelines.errors import GraphError
from grove_pipelines.graph import ENTRY
from grove_pipelines.graph.build import build_graph
from grove_pipelines.graph.scan import is_user_file, scan
from grove_pipelines.loader import load_graph
from tests.graph.toolpkg import EXPECTED, helpers, tools

pytestmark = pytest.mark.timeout(60)

REF = "tests.graph.toolpkg.app:agent"


@pytest.fixture
def at_root(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo_root)
    return repo_root


def test_the_fixture_graph_has_exactly_the_expected_edges(at_root: Path) -> None:
    graph = load_graph(REF)
    assert set(graph.edges()) == EXPECTED
    assert "decoy" not in {s.name for s in graph.stages()}
    assert set(graph.objects) == {s.name for s in graph.stages()}
    assert graph.objects["search"] is tools.search and graph.objects["chat"] is tools.chat


@pytest.mark.parametrize(
    ("callee", "function", "module", "needle"),
    [
        ("search", "_fetch", "helpers", "return list(await tools.rerank(await tools.search(question)))"),
        ("summarize", "Agent.summary", "helpers", "return str(await summarize(text))"),
        ("grade", "Agent._grade", "helpers", "return int(await grade(text))"),
        ("shout", "<lambda>", "helpers", "SHOUT = lambda text: tools.shout(text)"),
        ("captured", "make_caller.<locals>.call", "helpers", "return await target(text)"),
        ("chat", "ask", "helpers", "return await tools.chat.chat("),
    ],
)
def test_origins_name_the_function_and_the_line_that_refers_to_the_stage(
    at_root: Path, callee: str, function: str, module: str, needle: str
) -> None:
    graph = load_graph(REF)
    [origin] = graph.origins(ENTRY, callee)
    path = f"tests/graph/toolpkg/{module}.py"
    lines = (at_root / path).read_text().splitlines()
    assert (origin.function, origin.file) == (function, path)
    assert needle in lines[origin.line - 1]


def test_a_class_stage_reaches_a_registry_through_self(at_root: Path) -> None:
    graph = load_graph(REF)
    assert set(graph.callees("plan")) == {"calc", "fmt"}
    assert graph.origins("plan", "calc")[0].function == "Planner.helper"


def test_declared_edges_cover_what_the_scan_cannot_see() -> None:
    registry = types.ModuleType("registry")
    registry.search = tools.search  # type: ignore[attr-defined]

    @pipeline(name="p", calls=["search"])
    async def body(q: str) -> object:
        return await getattr(registry, "sea" + "rch")(q)

    graph = build_graph(body, [tools.search])
    assert graph.edges() == [(ENTRY, "search")]
    assert [str(o) for o in graph.origins(ENTRY, "search")] == ["declared"]
    assert graph.how_to_declare(ENTRY, "rerank") == 'calls=["rerank"] to @pipeline(name="p", ...)'


def test_calls_accepts_stage_objects_and_names_unknown_ones() -> None:
    @pipeline(name="p", calls=[tools.calc])
    async def body() -> None: ...

    assert build_graph(body).edges() == [(ENTRY, "calc")]

    @pipeline(name="q", calls=["ghost"])
    async def other() -> None: ...

    with pytest.raises(GraphError, match="pipeline 'q': calls names 'ghost'"):
        build_graph(other)


def test_foreign_code_is_not_scanned_and_plain_callables_are_ignored() -> None:
    assert not is_user_file(json.__file__)
    assert not is_user_file(pytest.__file__)
    assert is_user_file(helpers.__file__)

    @pipeline(name="p")
    async def body() -> object:
        return json.dumps(helpers.REGISTRY["len"]([await tools.calc("x")]))

    assert [hit.stage.name for hit in scan(body)] == ["calc", "fmt"]  # the registry's stages, not len


def test_a_stage_does_not_call_itself_through_its_own_reference() -> None:
    @stage
    async def recurse(n: int) -> int:
        return n if n <= 0 else await recurse(n - 1)

    assert scan(recurse) == []


def test_unreached_module_stages_warn_with_their_definition() -> None:
    @pipeline(name="p")
    async def body() -> object:
        return await tools.calc("x")

    graph = build_graph(body, [tools.calc, tools.decoy])
    [warning] = graph.warnings
    line = tools.decoy.target.__code__.co_firstlineno
    assert warning.startswith("stage 'decoy' is defined but the pipeline 'p' never calls it (defined at ")
    assert f"tests/graph/toolpkg/tools.py:{line})" in warning


class _Toolbox:
    """A user object in a global: its bound method, its class's classmethod and property are followed."""

    table = frozenset({tools.units})

    def __init__(self) -> None:
        self.extra = {tools.weather: "weather"}  # a stage as a dict key

    async def run(self, q: str) -> object:
        return await self.route(q)

    @classmethod
    async def route(cls, q: str) -> object:
        return [t(q) for t in cls.table]

    @property
    def first(self) -> object:
        return tools.echo


_BOX = _Toolbox()
_SETS = ({tools.calc}, (tools.shout, [tools.summarize]))


def test_sets_keys_tuples_and_user_objects_are_followed() -> None:
    @pipeline(name="p")
    async def body(q: str) -> object:
        return [await _BOX.run(q), _SETS, _BOX.first]

    found = {hit.stage.name for hit in scan(body)}
    assert found == {"units", "weather", "echo", "calc", "shout", "summarize"}


class _LoudList(list):  # type: ignore[type-arg]
    """A list subclass whose own iteration is user code the scan must not run."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("the scan ran user code")


_LOUD = _LoudList([tools.calc])


def test_container_subclasses_are_read_without_running_their_code() -> None:
    @pipeline(name="p")
    async def body() -> object:
        return _LOUD

    assert [hit.stage.name for hit in scan(body)] == ["calc"]
