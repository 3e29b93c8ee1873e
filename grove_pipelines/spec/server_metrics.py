"""The pipeline server's Prometheus series: one definition for the server that exports them and for
``grove-pipelines status``, which reads them back from the deployed entry's ``/metrics``.

Counters are exported with the ``_total`` suffix, histograms as ``_bucket``/``_sum``/``_count``.
"""

from __future__ import annotations

__all__ = [
    "METRICS_PATH",
    "PIPELINE_IN_FLIGHT",
    "PIPELINE_REQUESTS",
    "PIPELINE_REQUEST_SECONDS",
    "STAGE_CALLS",
    "STAGE_CALL_SECONDS",
    "STAGE_FAILED_OUTCOMES",
    "STAGE_OUTCOMES",
]

METRICS_PATH = "/metrics"
"""Where the server serves them, open to Prometheus (no API key)."""
PIPELINE_REQUESTS = "grove_pipeline_requests"
"""Counter, labels ``pipeline`` and ``status`` (the HTTP status answered, or ``cancelled``)."""
PIPELINE_REQUEST_SECONDS = "grove_pipeline_request_seconds"
"""Histogram of whole pipeline requests, label ``pipeline``."""
PIPELINE_IN_FLIGHT = "grove_pipeline_requests_in_flight"
"""Gauge, label ``pipeline``."""
STAGE_CALLS = "grove_stage_calls"
"""Counter of stage and LLM calls, labels ``caller``, ``stage`` and ``outcome`` (one of STAGE_OUTCOMES)."""
STAGE_CALL_SECONDS = "grove_stage_call_seconds"
"""Histogram of stage calls (retries included), label ``stage``; a retry alone observes nothing."""
STAGE_OUTCOMES = ("ok", "error", "timeout", "retry", "cancelled")
"""How a stage call ended; ``retry`` counts an attempt that failed and was tried again."""
STAGE_FAILED_OUTCOMES = ("error", "timeout")
"""The outcomes that mean the call failed for its caller."""
