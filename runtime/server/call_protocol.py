"""How one of the pipeline's pods calls another: the stage call's path, body and headers.

Shared by the caller (entry or stage server) and the stage server; the request id and deadline
headers ride on LLM calls too (``runtime.server.llm_calls``).

A call of stage ``retriever`` served elsewhere is::

    POST {GP_STAGE_URL_RETRIEVER}/v1/stages/retriever
    X-GP-Caller: frontend                  (the calling node; the callee refuses non-edges)
    X-Request-Id: 3f2a...                  (one id through every hop)
    X-Request-Deadline: 1764441600.250     (Unix time by which the whole request must be done)
    Authorization: Bearer <stage token>    (when the pods have one: only the pipeline's pods may call)
    x-session-id: agent-7                  (when the client named the run's session; else the callee
                                            takes the request id as the session, as the caller does)
    {"args": ["what is grove?"], "kwargs": {"k": 2}}

and answers ``200 {"result": ...}`` or an error status with ``{"error": {"message", "type", "code",
"stage"}}``. Values travel as JSON (pydantic's ``to_jsonable_python``); the callee validates them
against the stage's signature, the caller against its return annotation, so models and dataclasses
arrive as themselves (``runtime.server.value_codec``). Endpoints are found from the environment the
compiler sets on each pod: ``GP_STAGE_URL_<NAME>`` for Python stages, ``GP_LLM_URL_<NAME>`` for LLM
stages (the router), named in ``grove_pipelines.spec.stage_urls``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from grove_pipelines.spec.stage_urls import env_name
from runtime.router.request_ids import new_request_id

__all__ = [
    "CALLER_HEADER",
    "DEADLINE_HEADER",
    "REQUEST_ID_HEADER",
    "StageCall",
    "request_id_from",
    "stage_path",
    "urls_from_env",
]

CALLER_HEADER = "X-GP-Caller"
REQUEST_ID_HEADER = "X-Request-Id"
DEADLINE_HEADER = "X-Request-Deadline"


class StageCall(BaseModel):
    """The body of a stage call: positional and keyword arguments, JSON-encoded."""

    model_config = ConfigDict(extra="forbid")

    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def arguments(cls, data: Any) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)`` of a parsed body; raises pydantic's ``ValidationError`` when it is not a call.

        A body of the right shape (what every caller's client sends) needs no model built for it;
        any other goes through the model, so its error says what is wrong.
        """
        if type(data) is dict and data.keys() <= _CALL_FIELDS:
            args, kwargs = data.get("args", []), data.get("kwargs", {})
            if type(args) is list and type(kwargs) is dict:  # parsed JSON: the keys are strings
                return args, kwargs
        call = cls.model_validate(data)
        return call.args, call.kwargs


_CALL_FIELDS = frozenset(StageCall.model_fields)


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(value: str | None) -> str:
    """The caller's request id when it is a short plain token (it reaches logs and headers), else a new one."""
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()  # 32 hex digits, as uuid4().hex, without a system call


def stage_path(name: str) -> str:
    """The path a stage server serves ``name`` on."""
    return f"/v1/stages/{name}"


def urls_from_env(
    prefix: str, stages: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The endpoint of every stage that has one in the environment (others run in-process)."""
    env = os.environ if environ is None else environ
    found = {name: env.get(env_name(prefix, name), "").strip() for name in stages}
    return {name: url.rstrip("/") for name, url in found.items() if url}
