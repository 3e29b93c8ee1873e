"""What the router accepts from a client: the OpenAI request schemas, their bounds, and the fields it owns.

Every client byte is hostile. A body is parsed once, checked for depth, validated against the
pydantic models below (the same models render the router's OpenAPI document), bounded against the
model's context length, and stripped of the fields that belong to the router and the KV connector
(``kv_transfer_params`` would make a decode worker pull KV from any host the client names, or pin
KV on a prefill worker). The legs are then re-serialized from the cleaned dict; the client's raw
bytes never reach a worker. Fields the router does not know pass through for vLLM to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from runtime.http.json_wire import JsonError, decode_json

__all__ = [
    "MAX_DEPTH",
    "ROUTER_OWNED",
    "ChatRequest",
    "CompletionRequest",
    "InvalidRequest",
    "parse_request",
]

ROUTER_OWNED = ("kv_transfer_params", "ec_transfer_params")
"""Connector-private request fields: only the router sets them, on the legs it builds."""

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a body may have (chat content parts need four)."""

_MAX_N = 128
_MAX_LOGPROBS = 20  # vLLM's default --max-logprobs

Count = Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)]


class InvalidRequest(Exception):
    """The body is not a request the router will forward; ``message`` names the field, never echoes it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Sampling(_Open):
    """Fields every completion request shares; the bounded ones are those that cost the workers."""

    model: Annotated[str, Strict(), Field(min_length=1, max_length=256)]
    max_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    min_tokens: Count | None = None
    n: Annotated[int, Strict(), Field(ge=1, le=_MAX_N)] | None = None
    best_of: Annotated[int, Strict(), Field(ge=1, le=_MAX_N)] | None = None
    stream: Annotated[bool, Strict()] | None = None
    stream_options: dict[str, Any] | None = None
    user: Annotated[str, Strict(), Field(max_length=256)] | None = None
    prompt_logprobs: Annotated[int, Strict(), Field(ge=-1, le=_MAX_LOGPROBS)] | None = None


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: a text prompt, a batch of them, or token ids."""

    prompt: (
        Annotated[str, Strict(), Field(min_length=1)]
        | Annotated[list[Annotated[str, Strict()]], Field(min_length=1)]
        | Annotated[list[Annotated[int, Strict(), Field(ge=0)]], Field(min_length=1)]
        | Annotated[
            list[Annotated[list[Annotated[int, Strict(), Field(ge=0)]], Field(min_length=1)]],
            Field(min_length=1),
        ]
    )
    logprobs: Annotated[int, Strict(), Field(ge=0, le=_MAX_LOGPROBS)] | None = None
    echo: Annotated[bool, Strict()] | None = None


class ContentPart(_Open):
    """One part of a chat message's content; a text part's ``text`` is a string."""

    type: Annotated[str, Strict()]
    text: Annotated[str, Strict()] | None = None


class ChatMessage(_Open):
    """One chat turn."""

    role: Annotated[str, Strict(), Field(min_length=1, max_length=64)]
    content: Annotated[str, Strict()] | list[ContentPart] | None = None


class ChatRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    logprobs: Annotated[bool, Strict()] | None = None
    top_logprobs: Annotated[int, Strict(), Field(ge=0, le=_MAX_LOGPROBS)] | None = None


_MODELS: dict[str, type[_Sampling]] = {"completions": CompletionRequest, "chat": ChatRequest}
_VALIDATE = {endpoint: model.__pydantic_validator__.validate_python for endpoint, model in _MODELS.items()}
"""Each model's validator, called directly: ``model_validate``'s own checks cost more than a small body's validation."""


def _too_deep(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _describe(exc: ValidationError) -> str:
    """The first failing field and pydantic's message, without the input (it may be huge or a secret)."""
    err = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"] if not isinstance(p, str) or "[" not in p)
    if err["type"] == "missing":
        return f"missing required field {where!r}"
    return f"invalid field {where!r}: {err['msg']}"


def parse_request(
    raw: bytes,
    endpoint: Literal["completions", "chat"],
    *,
    context_length: Callable[[str], int | None] = lambda model: None,
) -> dict[str, Any]:
    """The validated, cleaned request body (a new dict; router-owned fields removed).

    Raises:
        InvalidRequest: not JSON, not an object, too deep, a field of the wrong type or out of
            bounds, or an output budget beyond ``context_length(model)`` (None: not known).
    """
    try:
        body = decode_json(raw)
    except (JsonError, RecursionError):  # strict RFC 8259: bad UTF-8, NaN, lone surrogates are refused too
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    # nesting needs a bracket per level, so a body with few brackets (most) needs no walk
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(body):
        raise InvalidRequest(f"the request body is nested deeper than {MAX_DEPTH} levels")
    for name in ROUTER_OWNED:
        body.pop(name, None)
    xargs = body.get("vllm_xargs")
    if isinstance(xargs, dict):
        for name in ROUTER_OWNED:
            xargs.pop(name, None)
    try:
        request: _Sampling = _VALIDATE[endpoint](body)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None
    limit = context_length(request.model)
    if limit is not None:
        for name in ("max_tokens", "max_completion_tokens", "min_tokens"):
            value = getattr(request, name)
            if value is not None and value > limit:
                raise InvalidRequest(
                    f"invalid field {name!r}: {value} exceeds the model's context length {limit}"
                )
    return body
