"""The router's OpenAPI 3.1 document (served at ``/openapi.json``), built from the request models it enforces.

The request schemas are :mod:`runtime.router.request`'s pydantic models, so the document and the
validation cannot drift apart; the fuzz tests (schemathesis) generate requests from it. Once the
workers' ``/v1/models`` are known, the document names the served models and bounds the output
budget by their smallest context length, as the router itself does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from grove_pipelines.spec.endpoints import ROUTER_READINESS_PATH
from runtime.router.request import ChatRequest, CompletionRequest
from runtime.server.openapi import ERROR_SCHEMA

_BUDGETS = ("max_tokens", "max_completion_tokens", "min_tokens")

__all__ = ["openapi_document"]

_ERRORS = {
    "400": "The body is not valid JSON, has a field of the wrong type, or is out of bounds",
    "401": "Missing or wrong API key",
    "404": "The model is not served",
    "408": "The body did not arrive in time",
    "413": "The body is too large",
    "429": "Too many requests waiting (Retry-After)",
    "502": "Every worker failed",
    "503": "No worker can serve the model, or no capacity (Retry-After)",
    "504": "The worker did not answer in time",
}


def _errors(*codes: str) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {code: {"description": _ERRORS[code], **ref} for code in codes}


def _completion(model: type[BaseModel], summary: str, op: str) -> dict[str, Any]:
    name = model.__name__
    return {
        "post": {
            "summary": summary,
            "operationId": op,
            "security": [{"bearer": []}, {}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
            },
            "responses": {
                "200": {
                    "description": "vLLM's answer (with `stream: true`, server-sent events ending in "
                    "`data: [DONE]`, or in an `error` event if the worker broke off)",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **_errors("400", "401", "404", "408", "413", "429", "502", "503", "504"),
            },
        }
    }


def _get(summary: str, op: str, ctype: str = "application/json", *extra: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": op,
            "responses": {
                "200": {"description": summary, "content": {ctype: {"schema": {}}}},
                **_errors(*extra),
            },
        }
    }


def _narrow(schema: dict[str, Any], models: list[str], context_length: int | None) -> None:
    props = schema["properties"]
    if models:
        props["model"] = {**props["model"], "enum": models}
    if context_length is not None:
        for name in _BUDGETS:
            for branch in props[name].get("anyOf", []):
                if branch.get("type") == "integer":
                    branch["maximum"] = context_length


def openapi_document(models: list[str] | None = None, context_length: int | None = None) -> dict[str, Any]:
    """The whole document: the two OpenAI endpoints, models, liveness, readiness, metrics.

    ``models`` (the served ones) and ``context_length`` narrow the request schemas when known.
    """
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for model in (CompletionRequest, ChatRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        _narrow(schema, sorted(models or []), context_length)
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "grove-pipelines router", "version": "1"},
        "paths": {
            "/v1/completions": _completion(CompletionRequest, "Text completion", "create_completion"),
            "/v1/chat/completions": _completion(ChatRequest, "Chat completion", "create_chat_completion"),
            "/v1/models": _get("The models the workers serve", "list_models", "application/json", "401"),
            "/health": _get("Liveness: the process answers", "health"),
            ROUTER_READINESS_PATH: {
                "get": {
                    "summary": "Readiness: some worker passed its health checks",
                    "operationId": "ready",
                    "responses": {
                        "200": {"description": "Ready", "content": {"application/json": {"schema": {}}}},
                        "503": {
                            "description": "No worker can serve, or draining",
                            "content": {"application/json": {"schema": {}}},
                        },
                    },
                }
            },
            "/metrics": _get("Prometheus metrics", "metrics", "text/plain"),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
