"""A schemathesis run in ``make test``: a few hundred generated requests, none answered with a 5xx or a traceback."""

from __future__ import annotations

import pytest

from tests.runtime.server.fuzz import fuzz_server


@pytest.mark.timeout(300)
def test_generated_requests_never_get_a_5xx_or_a_traceback() -> None:
    report = fuzz_server(examples=25)
    assert report.failures == [], "\n".join(report.failures[:20])
    assert report.cases >= 200, report
    assert any(400 <= status < 500 for status in report.statuses), report  # negative cases were refused
    assert report.statuses.get(200, 0) > 0, report  # and valid ones served
