"""Counters and histograms the router updates on every request, as plain numbers read at scrape time.

``prometheus_client``'s own series take a lock and do their bookkeeping on every ``inc`` and
``observe``; a routed request makes five or more such calls. The router's hot-path series are these
instead: a child is a few attributes added to in the event loop's thread, and a collector turns
them into the same exposition (name, help, labels, buckets) only when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["Tally", "TallyHistogram"]


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _Observed:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # a bucket's bound is inclusive (le)
        self.sum += value


class _Series(Collector):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation, self._labelnames = name, documentation, list(labelnames)
        self._children: dict[tuple[str, ...], _Count | _Observed] = {}
        registry.register(self)

    def remove(self, *labels: str) -> None:
        """Drop one labelled series (a worker that left)."""
        del self._children[labels]


class Tally(_Series):
    """A counter (exported as ``<name>_total``) whose children count in plain Python."""

    def labels(self, *labels: str) -> _Count:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = _Count()
        return child  # type: ignore[return-value]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self._labelnames)
        for labels, child in self._children.items():
            family.add_metric(list(labels), child.value)  # type: ignore[union-attr]
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self._labelnames)


class TallyHistogram(_Series):
    """A histogram with fixed buckets whose children count in plain Python."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.buckets = tuple(float(b) for b in buckets)
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *labels: str) -> _Observed:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = _Observed(self.buckets)
        return child  # type: ignore[return-value]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self._labelnames)
        for labels, child in self._children.items():
            assert isinstance(child, _Observed)
            cumulative, running = [], 0
            for bound, count in zip((*self.buckets, float("inf")), child.counts, strict=True):
                running += count
                cumulative.append((_bound(bound), running))
            family.add_metric(list(labels), cumulative, child.sum)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self._labelnames)


def _bound(value: float) -> str:
    """A bucket's ``le`` as prometheus_client writes it (``0.5``, ``1.0``, ``+Inf``)."""
    return "+Inf" if value == float("inf") else repr(value)
