"""The server's OpenAPI 3.1 document, built from each pipeline's signature (served at ``/openapi.json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["ERROR_SCHEMA", "PipelineAPI", "openapi_document"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "integer"},
                "stage": {"type": "string"},
                "request_id": {"type": "string"},
            },
        }
    },
}
_ERRORS = {
    "400": "Malformed JSON, or a bad X-Request-Deadline",
    "401": "No accepted bearer key (or, on a stage server, no valid stage token)",
    "404": "No such pipeline",
    "413": "The body is over the server's limit",
    "422": "The body does not fit the pipeline's signature",
    "500": "A stage or the pipeline body raised (the error names the stage; the log has the detail)",
    "502": "A stage server, the router or vLLM failed",
    "503": "The server is draining (SIGTERM); retry",
    "504": "A stage or the request's deadline timed out",
}
_ALWAYS = ["401", "413", "503"]
_JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}


class PipelineAPI(BaseModel):
    """What the document says about one pipeline; ``definitions`` go to ``components/schemas``."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    definitions: dict[str, Any] = {}


def _error_responses(codes: Sequence[str]) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {code: {"description": _ERRORS[code], **ref} for code in codes}


def _pipeline_path(api: PipelineAPI) -> dict[str, Any]:
    stream = "data: one `event: token` per piece of the answer, then `event: result` (or `event: error`)"
    return {
        "post": {
            "summary": f"Run the {api.name} pipeline",
            "description": api.description or f"Run the {api.name} pipeline.",
            "operationId": f"run_{api.name.replace('-', '_')}",
            "requestBody": {"required": True, "content": {"application/json": {"schema": api.input_schema}}},
            "responses": {
                "200": {
                    "description": "The pipeline's result (or, with `stream: true`, server-sent events)",
                    "content": {
                        "application/json": {"schema": api.output_schema},
                        "text/event-stream": {"schema": {"type": "string", "description": stream}},
                    },
                },
                **_error_responses(["400", "404", "422", "500", "502", "504", *_ALWAYS]),
            },
        }
    }


def openapi_document(
    pipelines: Sequence[PipelineAPI], stages: Sequence[str] = (), *, title: str, bearer: bool = False
) -> dict[str, Any]:
    """The whole document: pipelines, stage endpoints (stage-server mode), OpenAI, health and metrics.

    ``bearer``: the server requires ``Authorization: Bearer <key>`` on everything but the probes.
    """
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "Liveness: the process serves HTTP",
                "security": [],
                "responses": {"200": {"description": "Alive"}},
            }
        },
        "/ready": {
            "get": {
                "summary": "Readiness: 503 while draining",
                "security": [],
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Draining"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": {"description": "Text format"}},
            }
        },
    }
    if pipelines:
        paths["/v1/pipelines"] = {
            "get": {
                "summary": "The pipelines this server runs, with their input and output JSON schemas",
                "responses": {"200": {"description": "A list of pipelines", **_JSON_OBJECT}},
            }
        }
        for api in pipelines:
            paths[f"/v1/pipelines/{api.name}"] = _pipeline_path(api)
        for path, what in (("/v1/chat/completions", "chat completion"), ("/v1/completions", "completion")):
            paths[path] = {
                "post": {
                    "summary": f"OpenAI {what}, routed by `model` to the pipeline's LLM stage",
                    "requestBody": {"required": True, **_JSON_OBJECT},
                    "responses": {
                        "200": {"description": "The model's answer", **_JSON_OBJECT},
                        **_error_responses(["400", "404", "502", "504", *_ALWAYS]),
                    },
                }
            }
        paths["/v1/models"] = {
            "get": {
                "summary": "The LLM stages' model names",
                "responses": {"200": {"description": "OpenAI model list", **_JSON_OBJECT}},
            }
        }
    for name in stages:
        paths[f"/v1/stages/{name}"] = {
            "post": {
                "summary": f"Call stage {name} (stage-server mode)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"args": {"type": "array"}, "kwargs": {"type": "object"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": '`{"result": ...}`', **_JSON_OBJECT},
                    **_error_responses(["400", "404", "422", "500", "502", "504", *_ALWAYS]),
                },
            }
        }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {
                **{k: v for api in pipelines for k, v in api.definitions.items()},
                "Error": ERROR_SCHEMA,
            }
        },
    }
    if bearer:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
