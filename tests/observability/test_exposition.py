"""The router's and the pipeline server's ``/metrics`` pages pass ``promtool check metrics`` (Prometheus's
naming and format lint), so the series the dashboard reads are well-formed."""

from __future__ import annotations

import pytest

from tests.observability.series import promtool, touched


@pytest.mark.parametrize(("owner", "page"), sorted(touched().items()))
def test_promtool_finds_nothing_to_say_about_our_metrics(owner: str, page: str) -> None:
    assert "grove_" in page
    done = promtool("check", "metrics", stdin=page)
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), owner


def test_promtool_check_metrics_does_complain() -> None:
    done = promtool("check", "metrics", stdin="# HELP x_total A gauge.\n# TYPE x_total gauge\nx_total 1\n")
    assert done.returncode != 0
    assert "_total" in done.stdout + done.stderr
