"""Where a pod finds the stages it calls: one definition for the compiler, which sets the variables, and the server.

The compiler gives every caller ``GP_STAGE_URL_<STAGE>`` (a Python stage's Service) and
``GP_LLM_URL_<LLM>`` (its router sidecar on loopback); the pipeline server reads them to choose between
calling a stage over HTTP and running it in its own process.
"""

from __future__ import annotations

__all__ = ["LLM_URL_PREFIX", "STAGE_URL_PREFIX", "env_name"]

STAGE_URL_PREFIX = "GP_STAGE_URL_"
LLM_URL_PREFIX = "GP_LLM_URL_"


def env_name(prefix: str, stage: str) -> str:
    """``env_name(STAGE_URL_PREFIX, "web-search")`` -> ``"GP_STAGE_URL_WEB_SEARCH"``."""
    return prefix + stage.upper().replace("-", "_")
