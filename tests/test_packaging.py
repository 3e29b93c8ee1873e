"""The wheel ships what the code reads at run time and what type checkers look for (``py.typed``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_wheel_ships_py_typed_and_package_data(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("grove_pipelines", "runtime"):
        shutil.copytree(ROOT / package, src / package, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist")],
        check=True, cwd=src, timeout=170,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("grove_pipelines-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    # the reference: the data files in the source tree
    data = {p.relative_to(ROOT).as_posix() for p in (ROOT / "grove_pipelines/grove/crds").glob("*.yaml")}
    data |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "runtime/console/static").iterdir()}
    assert len(data) > 3
    assert {"grove_pipelines/py.typed", "runtime/py.typed"} | data <= shipped
