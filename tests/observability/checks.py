"""What every PromQL expression of deploy/observability must satisfy, for the dashboard's and the rules' tests."""

from __future__ import annotations

from tests.observability.promql import groupings, selections
from tests.observability.series import SCRAPE_LABELS, exported_series, vllm_series

__all__ = ["KNOWN", "problems"]

KNOWN = {**exported_series(), **vllm_series()}


def problems(expr: str) -> list[str]:
    """Why ``expr`` would show nothing: a metric no component exports, a label it does not carry."""
    found: list[str] = []
    for sel in selections(expr):
        if sel.metric not in KNOWN:
            found.append(f"{sel.metric}: no such series in the router, the pipeline server or vLLM")
        elif sel.metric.startswith("grove_"):
            unknown = sel.labels - KNOWN[sel.metric] - SCRAPE_LABELS
            if unknown:
                found.append(f"{sel.metric} has no label {sorted(unknown)}")
    for group in groupings(expr):
        ours = [KNOWN.get(s.metric) for s in group.over if s.metric.startswith("grove_")]
        if ours and len(ours) == len(group.over):
            carried = frozenset().union(*(labels or frozenset() for labels in ours))
            unknown = group.labels - carried - SCRAPE_LABELS
            if unknown:
                found.append(f"by {sorted(unknown)}: not a label of {[s.metric for s in group.over]}")
    return found
