"""PromQL expressions taken apart with promql-parser (a port of Prometheus's own parser): the series they select."""

from __future__ import annotations

from dataclasses import dataclass

import promql_parser

__all__ = ["GRAFANA_VARIABLES", "Grouping", "Selection", "groupings", "selections", "substitute"]

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$pipeline": ".*"}
"""What Grafana puts in place of the dashboard's variables before Prometheus sees the query."""


@dataclass(frozen=True)
class Selection:
    """One vector selector: the metric it names and the labels it matches on."""

    metric: str
    labels: frozenset[str]


@dataclass(frozen=True)
class Grouping:
    """One ``sum by (...)`` (or another aggregation with ``by``): the labels it keeps, and what it aggregates."""

    labels: frozenset[str]
    over: tuple[Selection, ...]


def substitute(expr: str) -> str:
    """The query as Grafana sends it."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
    return expr


def selections(expr: str) -> list[Selection]:
    """Every vector selector of ``expr`` (a ValueError when it does not parse)."""
    found: list[Selection] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            found.append(Selection(str(node.name), frozenset(m.name for m in matchers)))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def groupings(expr: str) -> list[Grouping]:
    """Every aggregation ``by (...)`` of ``expr``, with the selectors under it."""
    found: list[Grouping] = []

    def visit(node: object) -> bool:
        modifier = getattr(node, "modifier", None) if isinstance(node, promql_parser.AggregateExpr) else None
        if modifier is not None and modifier.type == promql_parser.AggModifierType.By:
            inner = tuple(selections(node.expr.prettify()))  # type: ignore[attr-defined]
            found.append(Grouping(frozenset(modifier.labels), inner))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found
