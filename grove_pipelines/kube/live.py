"""Live numbers for ``status``: requests, p50/p99 and errors per pipeline and per stage, read from the
deployed entry's own ``/metrics``.

Each pod behind the entry Service is read through the API server's pod proxy
(``GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/metrics``: the same credentials as the rest of
``status``, RBAC ``get`` on ``pods/proxy``), and the pods' series are added up. The numbers are since
each pod started (counters and histograms are cumulative); quantiles are estimated from the histogram
buckets the way Prometheus's ``histogram_quantile`` does. Stage numbers are the calls the entry made
(a stage called by another stage is counted on that stage's pod).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from grove_pipelines.errors import KubeError
from grove_pipelines.kube.client import KubeClient
from grove_pipelines.spec.server_metrics import (
    METRICS_PATH,
    PIPELINE_IN_FLIGHT,
    PIPELINE_REQUEST_SECONDS,
    PIPELINE_REQUESTS,
    STAGE_CALL_SECONDS,
    STAGE_CALLS,
    STAGE_FAILED_OUTCOMES,
)

__all__ = [
    "METRICS_LIMIT",
    "LiveNumbers",
    "PipelineNumbers",
    "StageNumbers",
    "bucket_quantile",
    "entry_numbers",
    "numbers_of",
]

METRICS_LIMIT = 4 * 1024 * 1024
"""The most bytes read from one pod's ``/metrics`` (a few hundred series make tens of kilobytes)."""


class PipelineNumbers(BaseModel):
    """One pipeline's requests since its pods started."""

    requests: int
    errors: int  # answered 5xx
    in_flight: int
    p50_s: float | None
    p99_s: float | None


class StageNumbers(BaseModel):
    """The calls the entry made to one stage (or LLM) since its pods started."""

    calls: int  # finished calls: ok, failed or cancelled
    errors: int  # failed: an error or a timeout, after the stage's retries
    retries: int
    p50_s: float | None
    p99_s: float | None


class LiveNumbers(BaseModel):
    """What the entry's pods say; ``unreadable`` names the pods that did not answer, and why."""

    pods: int
    unreadable: list[str] = []
    pipelines: dict[str, PipelineNumbers] = {}
    stages: dict[str, StageNumbers] = {}


Key = tuple[tuple[str, str], ...]


class _Series:
    """Samples of one or more pods, added up by name and labels."""

    def __init__(self) -> None:
        self.values: dict[str, dict[Key, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = tuple(sorted(sample.labels.items()))
                self.values[sample.name][key] += float(sample.value)

    def by(self, name: str, label: str, **match: str) -> dict[str, float]:
        """``sum by (label) (name{match})``."""
        out: dict[str, float] = defaultdict(float)
        for key, value in self.values.get(name, {}).items():
            labels = dict(key)
            if all(labels.get(k) == v for k, v in match.items()) and label in labels:
                out[labels[label]] += value
        return out

    def buckets(self, name: str, label: str, value: str) -> list[tuple[float, float]]:
        """``sum by (le) (name_bucket{label=value})`` as (upper bound, cumulative count), sorted."""
        les = self.by(f"{name}_bucket", "le", **{label: value})
        return sorted((float(le), count) for le, count in les.items())


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram, as Prometheus's ``histogram_quantile`` estimates it:
    linear within the bucket the rank falls in, the lowest bucket starting at 0, and the highest finite
    bound when the rank falls in ``+Inf``. None without observations."""
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    for index, (bound, count) in enumerate(ordered):
        if count < rank:
            continue
        if math.isinf(bound):
            return ordered[index - 1][0] if index > 0 else None
        if index == 0 and bound <= 0:
            return bound
        start, below = (ordered[index - 1][0], ordered[index - 1][1]) if index > 0 else (0.0, 0.0)
        inside = count - below
        return start + (bound - start) * ((rank - below) / inside if inside > 0 else 1.0)
    return None  # pragma: no cover (the +Inf bucket holds every observation)


def numbers_of(pages: Iterable[str], *, pods: int, unreadable: list[str] | None = None) -> LiveNumbers:
    """Add up the ``/metrics`` pages of the entry's pods into per-pipeline and per-stage numbers."""
    series = _Series()
    for page in pages:
        series.add(page)
    pipelines: dict[str, PipelineNumbers] = {}
    statuses: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in series.values.get(f"{PIPELINE_REQUESTS}_total", {}).items():
        labels = dict(key)
        statuses[labels.get("pipeline", "")][labels.get("status", "")] = value
    in_flight = series.by(PIPELINE_IN_FLIGHT, "pipeline")
    for name, by_status in sorted(statuses.items()):
        latency = series.buckets(PIPELINE_REQUEST_SECONDS, "pipeline", name)
        pipelines[name] = PipelineNumbers(
            requests=round(sum(by_status.values())),
            errors=round(sum(v for s, v in by_status.items() if s.startswith("5"))),
            in_flight=round(in_flight.get(name, 0.0)),
            p50_s=bucket_quantile(0.5, latency),
            p99_s=bucket_quantile(0.99, latency),
        )
    outcomes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for key, value in series.values.get(f"{STAGE_CALLS}_total", {}).items():
        labels = dict(key)
        outcomes[labels.get("stage", "")][labels.get("outcome", "")] += value
    stages: dict[str, StageNumbers] = {}
    for name, by_outcome in sorted(outcomes.items()):
        latency = series.buckets(STAGE_CALL_SECONDS, "stage", name)
        stages[name] = StageNumbers(
            calls=round(sum(v for o, v in by_outcome.items() if o != "retry")),
            errors=round(sum(by_outcome.get(o, 0.0) for o in STAGE_FAILED_OUTCOMES)),
            retries=round(by_outcome.get("retry", 0.0)),
            p50_s=bucket_quantile(0.5, latency),
            p99_s=bucket_quantile(0.99, latency),
        )
    return LiveNumbers(pods=pods, unreadable=unreadable or [], pipelines=pipelines, stages=stages)


def _port(service: dict[str, Any], pod: dict[str, Any]) -> int | None:
    """The pod port the Service sends to: its ``targetPort`` (a number, or a container port's name)."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not ports:
        return None
    target = ports[0].get("targetPort", ports[0].get("port"))
    if isinstance(target, int):
        return target
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def _selector(service: dict[str, Any]) -> str | None:
    labels = (service.get("spec") or {}).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def entry_numbers(client: KubeClient, *, service: str, namespace: str) -> LiveNumbers:
    """Read ``/metrics`` of every running pod behind the entry Service ``service`` and add them up."""
    svc = client.get("v1", "Service", service, namespace)
    selector = _selector(svc) if svc else None
    if svc is None or selector is None:
        return LiveNumbers(pods=0, unreadable=[f"service {service}: not found or without a selector"])
    pods = [
        p
        for p in client.list("v1", "Pod", namespace, label_selector=selector)["items"]
        if (p.get("status") or {}).get("phase") == "Running" and (p.get("status") or {}).get("podIP")
    ]
    pages: list[str] = []
    unreadable: list[str] = []
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        name = str(pod["metadata"]["name"])
        port = _port(svc, pod)
        if port is None:
            unreadable.append(f"{name}: no port matches the Service's targetPort")
            continue
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}:{port}/proxy{METRICS_PATH}"
        try:
            page = client.get_text(path, action=f"read {METRICS_PATH} of pod {name}", limit=METRICS_LIMIT)
            list(text_string_to_metric_families(page))  # a page that does not parse is reported, not added
        except KubeError as exc:  # its message names the pod
            unreadable.append((str(exc).splitlines() or [type(exc).__name__])[0][:400])
            continue
        except (ValueError, IndexError):
            unreadable.append(f"{name}: its {METRICS_PATH} is not in the Prometheus text format")
            continue
        pages.append(page)
    return numbers_of(pages, pods=len(pages), unreadable=unreadable)
