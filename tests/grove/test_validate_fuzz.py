"""No input crashes ``validate``: mutated Grove manifests give exit 0, 1 or 2 and one line per problem.

Each example takes a real manifest (Grove's samples and conformance cases), replaces, deletes or
retypes values at random paths (``null``, wrong types, lists where maps go, huge numbers, unhashable
values where names go), and runs the CLI on it — as a create and as an update of the original.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grove_pipelines import yamlio
from grove_pipelines.grove.validate import check_documents
from tests.cli.runner import run_cli

SAMPLES = Path(__file__).resolve().parent / "data" / "grove-samples"
E2E = Path(__file__).resolve().parents[1] / "conformance" / "grove-e2e"
BASES: list[Any] = [
    doc
    for path in [*sorted(SAMPLES.glob("*.yaml")), *sorted(E2E.glob("*.yaml"))]
    for doc in yamlio.load_all_file(path)
    if doc.get("kind") == "PodCliqueSet"
]

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=12),
    st.sampled_from(["", "0", "4h", "kai-scheduler", "Explicit", "-x", "a" * 300, "grove.io/mnnvl-group"]),
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Any, Any]:
    base = draw(st.sampled_from(BASES))
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(st.one_of(_values, st.just(doc)))
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_values)
    return base, doc


_settings = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.timeout(300)
@_settings
@given(mutated())
def test_mutated_manifests_never_crash_the_cli(case: tuple[Any, Any]) -> None:
    base, doc = case
    capsys = _Capture()
    with tempfile.TemporaryDirectory() as folder:
        new, old = Path(folder) / "new.yaml", Path(folder) / "old.yaml"
        new.write_text(yamlio.dump(doc))
        old.write_text(yamlio.dump(base))
        for extra in ([], ["--old", str(old)]):
            code, out, err = run_cli(["validate", str(new), *extra], capsys)  # type: ignore[arg-type]
            assert code in (0, 1, 2), (code, err)
            assert "Traceback" not in err
            assert all(line.startswith(("error: ", "warning: ")) for line in err.splitlines()), err
            assert (code == 0) == (not any(line.startswith("error: ") for line in err.splitlines()))
            if code == 2:
                assert out == "" or not isinstance(doc, dict)


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_manifests_never_crash_the_library(case: tuple[Any, Any]) -> None:
    base, doc = case
    for report in check_documents([doc], old=[base]) + check_documents([doc]):
        assert report.ok or report.problems  # a verdict, never an exception


class _Capture:
    """The ``capsys`` interface ``run_cli`` needs, inside a hypothesis example (no function fixtures there)."""

    def __init__(self) -> None:
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._redirects = contextlib.ExitStack()
        self._redirects.enter_context(contextlib.redirect_stdout(self._out))
        self._redirects.enter_context(contextlib.redirect_stderr(self._err))

    def readouterr(self) -> tuple[str, str]:
        out, err = self._out.getvalue(), self._err.getvalue()
        self._out.seek(0), self._out.truncate(), self._err.seek(0), self._err.truncate()
        return out, err
