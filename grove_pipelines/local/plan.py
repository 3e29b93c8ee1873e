"""What `grove-pipelines run` starts for a pipeline on one machine, decided before anything starts.

Each LLM stage gets vLLM workers (a NixlConnector prefill/decode pair when it is disaggregated, one
aggregated worker otherwise) serving the local model under the stage's model name, and a router in
front of them. ``--attach NAME=URL[,URL]`` uses workers that already run instead (tests start vLLM
once per session and hand its URLs to `run`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from grove_pipelines.errors import RunError
from grove_pipelines.graph import PipelineGraph
from grove_pipelines.spec import router_flags as rf

__all__ = ["LLMPlan", "example_body", "model_max_len", "parse_attach", "plan_llms"]

_FALLBACK_MAX_LEN = 2048


class LLMPlan(BaseModel):
    """The local serving of one LLM stage."""

    model_config = ConfigDict(frozen=True)

    stage: str
    served_model_name: str
    disaggregated: bool
    max_model_len: int
    routing: rf.RoutingPolicy
    attach: tuple[str, ...] = ()

    @property
    def roles(self) -> tuple[str, ...]:
        """The vLLM workers to start: ``("prefill", "decode")`` or ``("aggregated",)``."""
        return ("prefill", "decode") if self.disaggregated else ("aggregated",)

    def router_args(self, worker_urls: Sequence[str]) -> list[str]:
        """The router's worker flags for these workers (in the order of :attr:`roles`), and its policy."""
        policy = [rf.POLICY, self.routing]
        if self.disaggregated:
            return [rf.urls_flag("prefill"), worker_urls[0], rf.urls_flag("decode"), worker_urls[1], *policy]
        return [rf.urls_flag("worker"), worker_urls[0], *policy]


def parse_attach(values: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``["chat=http://a,http://b"]`` -> ``{"chat": ("http://a", "http://b")}``."""
    found: dict[str, tuple[str, ...]] = {}
    for value in values:
        name, sep, urls = value.partition("=")
        parts = tuple(u.strip().rstrip("/") for u in urls.split(",") if u.strip())
        if not sep or not name or not parts or not all(u.startswith(("http://", "https://")) for u in parts):
            raise RunError(
                f"--attach {value!r}: expected NAME=URL (aggregated) or NAME=PREFILL_URL,DECODE_URL"
            )
        found[name.strip()] = parts
    return found


def model_max_len(model_dir: Path) -> int:
    """The longest context the local model supports (``max_position_embeddings`` of its config)."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
        return int(config.get("max_position_embeddings") or _FALLBACK_MAX_LEN)
    except (OSError, ValueError, TypeError):
        return _FALLBACK_MAX_LEN


def plan_llms(
    graph: PipelineGraph, *, max_len: int, attach: Mapping[str, Sequence[str]] | None = None
) -> list[LLMPlan]:
    """One plan per LLM stage of the graph; ``--attach`` entries must name LLM stages and fit their roles."""
    attach = dict(attach or {})
    llms = {spec.name: spec for spec in graph.llm_stages()}
    unknown = sorted(set(attach) - set(llms))
    if unknown:
        raise RunError(
            f"--attach names {', '.join(unknown)}, not an LLM stage of {graph.name!r} ({', '.join(llms) or 'none'})"
        )
    plans = []
    for name, spec in llms.items():
        plan = LLMPlan(
            stage=name,
            served_model_name=spec.model_name,
            disaggregated=spec.disaggregated is not None,
            max_model_len=min(spec.max_model_len or max_len, max_len),
            routing=spec.routing,
            attach=tuple(attach.get(name, ())),
        )
        if plan.attach and len(plan.attach) != len(plan.roles):
            want = "PREFILL_URL,DECODE_URL" if plan.disaggregated else "one URL"
            raise RunError(
                f"--attach {name}: the stage is {'disaggregated' if plan.disaggregated else 'aggregated'}; give {want}"
            )
        plans.append(plan)
    return plans


def example_body(schema: Mapping[str, Any]) -> dict[str, object]:
    """A request body for the ``curl`` line: the required fields with example values."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    examples: dict[str, object] = {
        "string": "What is prefill/decode disaggregation?",
        "integer": 1,
        "number": 1.0,
        "boolean": True,
        "array": [],
        "object": {},
    }
    body: dict[str, object] = {}
    for name in schema.get("required") or ():
        kind = (properties.get(name) or {}).get("type", "string")
        body[name] = examples.get(kind, "example")
    return body
