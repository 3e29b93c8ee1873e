"""The series the dashboard and the alert rules may name, found independently of both.

Ours: every metric of the router and the pipeline server is given one sample, their real ``/metrics``
text is rendered and parsed back with prometheus_client's own parser, so the names are the ones
Prometheus scrapes (``_total``, ``_bucket``...). vLLM's: read from the installed vLLM's source (the
``name="vllm:..."`` of each Counter, Gauge and Histogram it creates), without importing vLLM.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from runtime.router.metrics import RouterMetrics
from runtime.server.metrics import Metrics

__all__ = ["SCRAPE_LABELS", "exported_series", "promtool", "touched", "vllm_series"]

SCRAPE_LABELS = frozenset({"namespace", "instance", "job", "pod"})
"""Labels Prometheus's scrape adds (target labels; ``namespace``/``pod`` by the usual Kubernetes relabelling)."""

_SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}


def _touch(registry: CollectorRegistry) -> None:
    """One sample in every labelled series, so the rendered page lists it."""
    for collector in list(registry._collector_to_names):  # the registry lists them nowhere public
        labels = getattr(collector, "_labelnames", ())
        child: Any = collector.labels(*(["x"] * len(labels))) if labels else collector
        if hasattr(child, "observe"):
            child.observe(1.0)
        elif hasattr(child, "inc"):
            child.inc()


def touched() -> dict[str, str]:
    """The ``/metrics`` page of the router and of the pipeline server, with a sample in every series."""
    pages: dict[str, str] = {}
    for owner in (RouterMetrics(), Metrics()):
        _touch(owner.registry)
        pages[type(owner).__name__] = owner.render().decode()
    return pages


def exported_series() -> dict[str, frozenset[str]]:
    """Sample name -> its label names, as the router's and the pipeline server's ``/metrics`` show them."""
    found: dict[str, set[str]] = {}
    for page in touched().values():
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in found.items()}


def vllm_series() -> dict[str, frozenset[str]]:
    """Sample name -> label names (not checked: vLLM adds ``model_name``, ``engine``...) of vLLM's metrics."""
    spec = importlib.util.find_spec("vllm")
    assert spec is not None and spec.origin is not None, "vLLM is not installed"
    source = Path(spec.origin).parent / "v1" / "metrics" / "loggers.py"
    found: dict[str, frozenset[str]] = {}
    for node in ast.walk(ast.parse(source.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        kind = node.func.attr.removeprefix("_").removesuffix("_cls").capitalize()
        for keyword in node.keywords:
            if keyword.arg == "name" and isinstance(keyword.value, ast.Constant) and kind in _SUFFIXES:
                name = str(keyword.value.value)
                base = name.removesuffix("_total") if kind == "Counter" else name  # the client adds it back
                for suffix in _SUFFIXES[kind]:
                    found[base + suffix] = frozenset()
    return found


def promtool(
    *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run promtool: the one ``make setup`` put in the venv (from Debian's prometheus package), or on PATH."""
    beside = Path(sys.executable).parent / "promtool"
    found = str(beside) if beside.exists() else shutil.which("promtool")
    assert found, "promtool is missing: run `make setup` (scripts/setup-venv.sh installs it)"
    return subprocess.run(
        [found, *args], check=False, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60
    )
