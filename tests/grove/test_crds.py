"""The vendored CRDs are unchanged copies of ../shared/grove-crds/ (when that folder exists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grove_pipelines.grove.validate import load_crds

VENDORED = Path(__file__).resolve().parents[2] / "grove_pipelines" / "grove" / "crds"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "grove-crds"


def test_vendored_crds_are_loaded() -> None:
    crds = load_crds()
    assert set(crds) == {
        ("grove.io", "PodCliqueSet"), ("grove.io", "PodClique"), ("grove.io", "PodCliqueScalingGroup"),
        ("grove.io", "ClusterTopologyBinding"), ("scheduler.grove.io", "PodGang"),
    }  # fmt: skip
    assert (VENDORED / "README.md").read_text().count("fcc3b3bbbc5e6a2a797cd080bdbc6983b1ccec24") == 1


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/grove-crds is not present")
def test_vendored_crds_equal_the_shared_copies() -> None:
    shared = sorted(p.name for p in SHARED.glob("*.yaml"))
    assert shared == sorted(p.name for p in VENDORED.glob("*.yaml"))
    for name in shared:
        assert (VENDORED / name).read_bytes() == (SHARED / name).read_bytes(), name
