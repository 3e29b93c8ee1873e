"""The pipeline server's page: the graph coloured by live stage metrics, recent requests as waterfalls, a form.

``recent`` keeps the last requests and their stage calls in memory (bounded); ``stats`` reads each
stage's counters back from the server's own metrics; ``page`` serves the static files and the JSON
the page polls. The static files (``static/``) are plain HTML, CSS and JavaScript: no build step.
"""

from __future__ import annotations

from runtime.console.page import PAGE_PATHS, Console
from runtime.console.recent import RecentRequests, RequestSummary, StageCallRecord, Waterfall, Waterfalls

__all__ = [
    "PAGE_PATHS",
    "Console",
    "RecentRequests",
    "RequestSummary",
    "StageCallRecord",
    "Waterfall",
    "Waterfalls",
]
