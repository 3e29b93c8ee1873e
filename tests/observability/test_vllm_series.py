"""The vLLM series the dashboard reads are on a real vLLM worker's /metrics page (the session's pair)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.engines.vllm import PDPair
from tests.observability.dashboard import load_dashboard, queries
from tests.observability.promql import selections, substitute

pytestmark = pytest.mark.vllm


def test_every_vllm_series_of_the_dashboard_is_on_a_real_worker(vllm_pd_pair: PDPair) -> None:
    wanted = {
        s.metric
        for _, q in queries(load_dashboard())
        for s in selections(substitute(q))
        if s.metric.startswith("vllm:")
    }
    assert wanted
    page = httpx.get(f"{vllm_pd_pair.decode.url}/metrics", timeout=30).text
    served = {sample.name for family in text_string_to_metric_families(page) for sample in family.samples}
    assert wanted - served == set()
