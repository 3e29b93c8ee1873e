"""`validate` against Grove's own verdicts: cases rebuilt from Grove's webhook unit tests, its e2e manifests
and its samples (``cases/*.yaml``), each judged under the operator configuration, topology bindings and
release the Grove test used. Agreement must be at least 95% per configuration, and every disagreement
must be listed in ``DELIBERATE`` with its reason.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from grove_pipelines import yamlio
from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.operator_config import OperatorConfig
from grove_pipelines.grove.releases import grove_release
from grove_pipelines.grove.topology_bindings import bindings_from
from grove_pipelines.grove.validate import ObjectReport, check_documents

HERE = Path(__file__).resolve().parent
MINIMUM_AGREEMENT = 0.95
DELIBERATE = {
    "pcsg-update-nil-min-to-value": (
        "Grove's unit test compares a stored scaling group without minAvailable; through an API server the "
        "CRD default (1) is stored, so the update changes nothing — validate judges the object as stored"
    ),
}


class Case(BaseModel):
    """One Grove verdict on one manifest (or one update of a live object)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    test: str
    release: str
    operator_config: dict[str, Any]
    verdict: Literal["accepted", "rejected"]
    grove_field: str | None = None
    note: str | None = None
    topology: list[dict[str, Any]] = Field(default_factory=list)
    old: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    file: str | None = None

    def documents(self) -> list[Any]:
        if self.file is not None:
            return yamlio.load_all_file(HERE / self.file)
        assert self.manifest is not None, self.id
        return [self.manifest]

    def cluster(self) -> GroveCluster:
        return GroveCluster(
            release=grove_release(self.release),
            config=OperatorConfig.model_validate(self.operator_config),
            bindings=bindings_from(self.topology),
        )

    @property
    def configuration(self) -> str:
        return json.dumps({"release": self.release, **self.operator_config}, sort_keys=True)


def _cases() -> list[Case]:
    found = []
    for path in sorted((HERE / "cases").glob("*.yaml")):
        found += [Case.model_validate(c) for c in yamlio.load_file(path)["cases"]]
    return found


CASES = _cases()


def _judge(case: Case) -> tuple[str, list[ObjectReport]]:
    old = [case.old] if case.old is not None else None
    reports = [r for r in check_documents(case.documents(), cluster=case.cluster(), old=old) if not r.skipped]
    return ("rejected" if any(r.problems for r in reports) else "accepted"), reports


def test_the_cases_cover_grove_tests_e2e_and_samples() -> None:
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)
    assert {c.verdict for c in CASES} == {"accepted", "rejected"}
    assert any(c.old for c in CASES) and any(c.file for c in CASES) and any(c.topology for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    verdict, reports = _judge(case)
    if case.id in DELIBERATE:
        assert verdict != case.verdict, f"{case.id} now agrees with Grove: drop it from DELIBERATE"
        return
    assert verdict == case.verdict, [str(p) for r in reports for p in r.problems]
    if case.grove_field is not None:  # our rejection names Grove's field (ours may be more precise: a child)
        wanted = case.grove_field.replace(".spec.podSpec.spec.", ".spec.podSpec.")
        paths = [p.path for r in reports for p in r.problems]
        assert any(_same_field(_parts(wanted), _parts(path)) for path in paths), (wanted, paths)


def _parts(path: str) -> list[str]:
    return [part for part in re.split(r"[.\[\]]", path) if part]


def _same_field(grove: list[str], ours: list[str]) -> bool:
    """Grove's path matches ours when each of its parts appears in order (Grove omits list indices at times)."""
    position = 0
    for part in grove:
        while position < len(ours) and ours[position] != part:
            position += 1
        if position == len(ours):
            return False
        position += 1
    return True


def test_agreement_per_configuration() -> None:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in CASES:
        verdict, _ = _judge(case)
        totals[case.configuration][0] += verdict == case.verdict
        totals[case.configuration][1] += 1
    for configuration, (agreed, total) in totals.items():
        assert agreed / total >= MINIMUM_AGREEMENT, (configuration, agreed, total)
