"""deploy/observability/grafana-dashboard.json: Grafana's schema, and PromQL that parses and selects real series.

The schema check decodes the dashboard with grafana-foundation-sdk (Grafana's own types, generated from
its dashboard schema, with every panel and Prometheus query plugin registered) and encodes it again: a
key the schema does not know is dropped on the way, so the two must be equal. Each query, with Grafana's
variables put in as Grafana does, must parse with promql-parser and with promtool (Prometheus's own
parser, fed the queries as recording rules), and name only series our metrics modules or vLLM export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.observability.checks import problems
from tests.observability.dashboard import load_dashboard, queries
from tests.observability.promql import selections, substitute
from tests.observability.series import promtool


def _dropped(mine: Any, theirs: Any, path: str = "") -> list[str]:
    """Paths of ``mine`` missing or changed in ``theirs``."""
    if isinstance(mine, dict):
        if not isinstance(theirs, dict):
            return [path]
        return [
            p
            for k, v in mine.items()
            for p in (_dropped(v, theirs[k], f"{path}.{k}") if k in theirs else [f"{path}.{k}"])
        ]
    if isinstance(mine, list):
        if not isinstance(theirs, list) or len(mine) != len(theirs):
            return [path]
        return [
            p
            for i, (a, b) in enumerate(zip(mine, theirs, strict=True))
            for p in _dropped(a, b, f"{path}[{i}]")
        ]
    return [] if mine == theirs else [path]


def _round_trip(dashboard: dict[str, Any]) -> dict[str, Any]:
    register_default_plugins()
    encoded: dict[str, Any] = json.loads(json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder))
    return encoded


def test_the_dashboard_fits_grafanas_schema() -> None:
    dashboard = load_dashboard()
    assert _dropped(dashboard, _round_trip(dashboard)) == []


def test_the_schema_check_sees_an_unknown_key() -> None:
    dashboard = load_dashboard()
    dashboard["panels"][1]["targets"][0]["exprr"] = "up"
    dashboard["panels"][2]["gridpos"] = {}
    assert _dropped(dashboard, _round_trip(dashboard)) == [
        ".panels[1].targets[0].exprr",
        ".panels[2].gridpos",
    ]


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in load_dashboard()["panels"]:
        g = panel["gridPos"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert g["x"] + g["w"] <= 24 and not cells & taken, panel["title"]
        taken |= cells


@pytest.mark.parametrize(("title", "query"), queries(load_dashboard()), ids=lambda v: str(v)[:40])
def test_every_query_parses_and_selects_real_series(title: str, query: str) -> None:
    expr = substitute(query)
    assert selections(expr), title
    assert problems(expr) == [], title


def test_the_name_check_sees_a_missing_series_and_label() -> None:
    assert problems("rate(grove_router_request_total[5m])")  # requests, not request
    assert problems('sum by (stage) (grove_pipeline_requests_total{outcome="ok"})')  # stage labels elsewhere
    assert problems("sum by (namespace, endpoint) (rate(grove_router_requests_total[5m]))") == []


def test_prometheus_parses_every_query(tmp_path: Path) -> None:
    """promtool checks the queries as recording rules: Prometheus's own parser and type checks."""
    rules = [
        {"record": f"grove:dashboard_query_{i}", "expr": substitute(q)}
        for i, (_, q) in enumerate(queries(load_dashboard()))
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_the_dashboard_covers_every_component() -> None:
    named = {s.metric for _, q in queries(load_dashboard()) for s in selections(substitute(q))}
    for needed in (
        "grove_pipeline_requests_total",
        "grove_stage_calls_total",
        "grove_router_time_to_first_token_seconds_bucket",
        "grove_router_ejections_total",
        "grove_router_worker_healthy",
        "vllm:kv_cache_usage_perc",
    ):
        assert needed in named
