"""deploy/observability/grafana-dashboard.json, and the PromQL queries in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["DASHBOARD", "load_dashboard", "queries"]

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "grafana-dashboard.json"


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, query) of every panel target, and (variable, metric) of every query variable."""
    found = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [
        (f"variable {v['name']}", v["query"].removeprefix("label_values(").partition(",")[0])
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return found
