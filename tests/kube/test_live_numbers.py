"""The arithmetic of `status`'s live numbers: quantiles checked against Prometheus's own
``histogram_quantile`` (promtool evaluates it on the same buckets), and pods' pages added up."""

from __future__ import annotations

import random
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from grove_pipelines.kube.live import bucket_quantile, numbers_of
from runtime.server.metrics import Metrics
from tests.observability.series import promtool

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def _buckets(observations: list[float]) -> list[tuple[float, float]]:
    """(le, cumulative count) of a real prometheus_client histogram that saw ``observations``."""
    registry = CollectorRegistry()
    histogram = Histogram("h", "test", buckets=BOUNDS, registry=registry)
    for value in observations:
        histogram.observe(value)
    page = generate_latest(registry).decode()
    return [
        (float(s.labels["le"]), s.value)
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == "h_bucket"
    ]


CASES = {
    "spread": [random.Random(7).uniform(0, 3) for _ in range(200)],
    "one bucket": [0.03] * 10,
    "tail past the last bound": [0.2] * 98 + [9.0, 12.0],
    "lowest bucket": [0.001, 0.002, 0.004],
}


def test_quantiles_agree_with_prometheus(tmp_path: Path) -> None:
    """For every case and quantile, promtool's histogram_quantile over the same buckets equals ours."""
    series, tests = [], []
    for index, (name, observations) in enumerate(CASES.items()):
        buckets = _buckets(observations)
        series += [
            {
                "series": f'h_bucket{{case="{index}",le="{"+Inf" if le == float("inf") else le}"}}',
                "values": f"{count:g}",
            }
            for le, count in buckets
        ]
        for q in (0.5, 0.9, 0.99):
            ours = bucket_quantile(q, buckets)
            assert ours is not None, name
            tests.append(
                {
                    "expr": f'histogram_quantile({q}, h_bucket{{case="{index}"}})',
                    "eval_time": "0m",
                    "exp_samples": [{"labels": f'{{case="{index}"}}', "value": ours}],
                }
            )
    (tmp_path / "empty.yaml").write_text("groups: []\n")
    spec = {
        "rule_files": ["empty.yaml"],
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "quantiles.test.yaml").write_text(yaml.safe_dump(spec))
    done = promtool("test", "rules", "quantiles.test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_would_see_a_wrong_quantile(tmp_path: Path) -> None:
    buckets = _buckets(CASES["spread"])
    wrong = (bucket_quantile(0.5, buckets) or 0) * 1.1
    series = [
        {"series": f'h_bucket{{le="{"+Inf" if le == float("inf") else le}"}}', "values": f"{c:g}"}
        for le, c in buckets
    ]
    test = {
        "expr": "histogram_quantile(0.5, h_bucket)",
        "eval_time": "0m",
        "exp_samples": [{"labels": "{}", "value": wrong}],
    }
    (tmp_path / "empty.yaml").write_text("groups: []\n")
    spec = {
        "rule_files": ["empty.yaml"],
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": [test]}],
    }
    (tmp_path / "q.test.yaml").write_text(yaml.safe_dump(spec))
    assert promtool("test", "rules", "q.test.yaml", cwd=tmp_path).returncode != 0


def test_no_observations_no_quantile() -> None:
    assert bucket_quantile(0.5, _buckets([])) is None
    assert bucket_quantile(0.5, []) is None


def test_the_pods_pages_add_up() -> None:
    """Two entry pods' real /metrics pages: requests, errors and calls are the sums of what each saw."""
    first, second = Metrics(), Metrics()
    for metrics, ok, failed in ((first, 3, 1), (second, 2, 2)):
        for _ in range(ok):
            metrics.requests.labels("rag", "200").inc()
            metrics.request_seconds.labels("rag").observe(0.2)
            metrics.stage_call("frontend", "retriever", "ok", 0.05)
        for _ in range(failed):
            metrics.requests.labels("rag", "500").inc()
            metrics.request_seconds.labels("rag").observe(3.0)
            metrics.stage_call("frontend", "retriever", "retry")
            metrics.stage_call("frontend", "retriever", "timeout", 3.0)
    first.requests.labels("rag", "cancelled").inc()
    first.in_flight.labels("rag").inc()
    live = numbers_of([first.render().decode(), second.render().decode()], pods=2)
    rag, retriever = live.pipelines["rag"], live.stages["retriever"]
    assert (rag.requests, rag.errors, rag.in_flight) == (3 + 1 + 2 + 2 + 1, 1 + 2, 1)
    assert (retriever.calls, retriever.errors, retriever.retries) == (5 + 3, 3, 3)
    assert rag.p50_s is not None and 0.1 < rag.p50_s <= 0.25  # 5 of 8 observed requests took 0.2 s
    assert rag.p99_s is not None and 2.5 < rag.p99_s <= 5  # the slowest took 3 s
