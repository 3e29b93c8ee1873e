"""One ``/metrics`` page for several router processes: each writes its samples, the scraped one sums them.

A scrape reaches whichever process the kernel hands the connection to, so each process's page must
count the whole router, or Prometheus would see counters jump between processes. Every process
writes a snapshot of its samples to its own file in a directory the processes share (every second,
and whenever it is scraped), replacing it atomically; the scraped process merges its fresh samples
with the others' latest snapshots. Counters and histograms add up; of the gauges, the queue depth
adds up, and the others (a worker's health, its in-flight count, already shared through the load
board) are the same in every process, so the highest is taken.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["MetricsPeers"]

SNAPSHOT_INTERVAL = 1.0  # seconds; another process's numbers on a page are at most this old
_SUMMED_GAUGES = frozenset({"grove_router_queue_depth"})

Sample = tuple[str, dict[str, str], float]


class MetricsPeers:
    """This process's part (``index``) of a ``directory`` shared by ``processes`` router processes."""

    def __init__(self, directory: Path, processes: int, index: int) -> None:
        self.directory, self.processes, self.index = Path(directory), processes, index

    def _path(self, index: int) -> Path:
        return self.directory / f"{index}.json"

    def publish(self, registry: CollectorRegistry) -> list[Metric]:
        """Collect this process's families and write their samples as its snapshot."""
        families = list(registry.collect())
        data = [
            [f.name, f.type, f.documentation, [[s.name, s.labels, s.value] for s in f.samples]]
            for f in families
        ]
        tmp = self._path(self.index).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._path(self.index))
        return families

    async def run(self, registry: CollectorRegistry) -> None:
        """Publish every :data:`SNAPSHOT_INTERVAL` seconds until cancelled."""
        while True:
            self.publish(registry)
            await asyncio.sleep(SNAPSHOT_INTERVAL)

    def merged(self, registry: CollectorRegistry) -> CollectorRegistry:
        """A registry whose page is every process's samples merged (this one's fresh, the others' latest)."""
        merged: dict[str, Metric] = {}
        values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        order: dict[str, list[tuple[str, tuple[tuple[str, str], ...]]]] = {}

        def add(name: str, kind: str, doc: str, samples: list[Sample]) -> None:
            if name not in merged:
                merged[name] = Metric(name, doc, kind)
                order[name] = []
            summed = kind != "gauge" or name in _SUMMED_GAUGES
            for sample_name, labels, value in samples:
                key = (name, sample_name, tuple(sorted(labels.items())))
                if key not in values:
                    order[name].append(key[1:])
                    values[key] = value
                else:
                    values[key] = values[key] + value if summed else max(values[key], value)

        for family in self.publish(registry):
            add(
                family.name,
                family.type,
                family.documentation,
                [(s.name, s.labels, s.value) for s in family.samples],
            )
        for index in range(self.processes):
            if index == self.index:
                continue
            try:
                data = json.loads(self._path(index).read_text())
            except (OSError, ValueError):
                continue  # not written yet (still starting) or being replaced: its numbers join next time
            for name, kind, doc, samples in data:
                add(name, kind, doc, [(s[0], s[1], float(s[2])) for s in samples])
        for name, metric in merged.items():
            for sample_name, labels in order[name]:
                metric.add_sample(sample_name, dict(labels), values[(name, sample_name, labels)])
        out = CollectorRegistry(auto_describe=False)
        out.register(_Fixed(list(merged.values())))
        return out


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
