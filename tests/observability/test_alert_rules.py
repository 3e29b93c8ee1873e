"""deploy/observability/alerts.yaml: linted and unit-tested by promtool, and naming only real series."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.observability.checks import problems
from tests.observability.series import promtool

HERE = Path(__file__).resolve().parents[2] / "deploy" / "observability"
RULES = HERE / "alerts.yaml"


def _rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", RULES.name, cwd=HERE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The linter is not a rubber stamp: a PromQL typo in a copy of the rules fails it."""
    broken = RULES.read_text().replace(
        "increase(grove_router_ejections_total[10m])", "increase(grove_router_ejections_total[10m)"
    )
    (tmp_path / "alerts.yaml").write_text(broken)
    done = promtool("check", "rules", "alerts.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


def test_the_alerts_fire_on_their_unit_tests() -> None:
    """alerts.test.yaml: each alert fires on a breaching series, at the time and with the text expected,
    and stays quiet on the healthy one beside it."""
    done = promtool("test", "rules", "alerts.test.yaml", cwd=HERE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """With the error-rate threshold raised past the test's 20%, the unit tests must fail."""
    (tmp_path / "alerts.yaml").write_text(
        RULES.read_text().replace(") > 0.05\n        for: 5m", ") > 0.5\n        for: 5m")
    )
    (tmp_path / "alerts.test.yaml").write_text((HERE / "alerts.test.yaml").read_text())
    done = promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "GrovePipelineErrorRateHigh" in done.stdout + done.stderr


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: str(r["alert"]))
def test_every_rule_names_real_series(rule: dict[str, object]) -> None:
    assert problems(str(rule["expr"])) == []


def test_the_objectives_and_alerts_the_issue_asks_for() -> None:
    names = {str(r["alert"]) for r in _rules()}
    assert {
        "GroveRouterTTFTObjectiveMissed",
        "GroveRouterErrorRateHigh",
        "GrovePipelineErrorRateHigh",
        "GroveRouterWorkerEjected",
    } <= names
