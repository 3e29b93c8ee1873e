"""Importing the router sidecar loads neither the pipeline SDK nor the compiler (it runs in every pod)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

_HEAVY = (
    "grove_pipelines.sdk",
    "grove_pipelines.spec.models",
    "grove_pipelines.compile",
    "grove_pipelines.grove",
    "grove_pipelines.graph",
    "grove_pipelines.loader",
    "runtime.server.app",
    "runtime.server.executor",
)


def _modules_after(statement: str) -> list[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=50)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_router_import_loads_no_sdk_or_compiler() -> None:
    loaded = _modules_after("import runtime.router")
    assert "runtime.router.server" in loaded
    assert [m for m in loaded if m.startswith(_HEAVY)] == []


def test_package_names_still_resolve_on_first_use() -> None:
    loaded = _modules_after(
        "from grove_pipelines import PD, llm, stage\nassert callable(llm) and callable(stage) and PD"
    )
    assert "grove_pipelines.sdk" in loaded and "grove_pipelines.spec" in loaded


def test_unknown_package_attribute_is_an_attribute_error() -> None:
    import grove_pipelines

    with pytest.raises(AttributeError, match="no_such_name"):
        grove_pipelines.no_such_name  # noqa: B018
