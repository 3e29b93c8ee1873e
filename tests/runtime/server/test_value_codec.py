"""A stage call's fast paths say what the general ones say: the body in one pass (``encode_json``),
its shape (``StageCall.arguments``) and its arguments bound by position (``ArgBinder``)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from runtime.server.call_protocol import StageCall
from runtime.server.value_codec import ArgBinder, encode_json


class Doc(BaseModel):
    title: str
    score: float


@dataclasses.dataclass
class Hit:
    doc: Doc
    rank: int


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"args": (1, "two"), "kwargs": {}}, {"args": [1, "two"], "kwargs": {}}),
        (Hit(Doc(title="grove", score=0.5), 1), {"doc": {"title": "grove", "score": 0.5}, "rank": 1}),
        ({1: {2, 3}}, {"1": [2, 3]}),
        ([math.nan, math.inf, -math.inf], [None, None, None]),
        ("héllo ✓", "héllo ✓"),
        (10**40, 10**40),
        (b"raw", "raw"),
        ("a\ud800b", "a\ud800b"),  # a lone surrogate: UTF-8 cannot hold it, so it goes escaped
        ({"x": Opaque()}, {"x": "opaque!"}),  # unknown to pydantic: its str, as encode() gives it
    ],
)
def test_the_bytes_parse_back_to_the_json_value(value: Any, expected: Any) -> None:
    assert json.loads(encode_json(value)) == expected


def test_a_value_that_contains_itself_is_refused() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        encode_json({"args": [looped]})


def _stage(text: str, doc: Doc, times: int = 1, *, loud: bool = False) -> str:
    return text * times


def _reference(args: list[Any], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """What binding by the signature and validating each value gives (the binder's general way)."""
    bound = inspect.signature(_stage).bind(*args, **kwargs)
    hints = {"text": str, "doc": Doc, "times": int, "loud": bool}
    for name, value in bound.arguments.items():
        bound.arguments[name] = TypeAdapter(hints[name]).validate_python(value)
    return bound.args, bound.kwargs


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (["x", {"title": "t", "score": 1}, 3], {}),  # every parameter by position
        (["x", {"title": "t", "score": "2.5"}], {}),  # a default left out
        (["x"], {"doc": {"title": "t", "score": 0}, "loud": "true"}),
        ([], {"text": "x", "doc": Doc(title="t", score=1)}),
    ],
)
def test_the_binder_validates_as_the_signature_does(args: list[Any], kwargs: dict[str, Any]) -> None:
    assert ArgBinder(_stage).bind(args, kwargs) == _reference(args, kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (["x", {"title": "t"}, 3], {}, ValidationError),  # every one by position, one invalid
        (["x", {"title": "t", "score": 1}, 3, 4], {}, TypeError),
        (["x"], {"nope": 1}, TypeError),
    ],
)
def test_the_binder_refuses_what_the_signature_refuses(
    args: list[Any], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _reference(args, kwargs)
    with pytest.raises(error):
        ArgBinder(_stage).bind(args, kwargs)


@pytest.mark.parametrize(
    "body",
    [
        {"args": [1, "a"], "kwargs": {"k": [2]}},
        {"args": []},
        {"kwargs": {"k": None}},
        {},
        {"args": "x"},
        {"args": [], "extra": 1},
        {"kwargs": [1]},
        [1, 2],
        None,
        {"args": (1, 2)},  # parsed JSON has no tuples; the model alone decides (it takes one)
    ],
)
def test_a_call_body_is_read_as_the_model_reads_it(body: Any) -> None:
    try:
        call = StageCall.model_validate(body)
    except ValidationError:
        with pytest.raises(ValidationError):
            StageCall.arguments(body)
        return
    assert StageCall.arguments(body) == (call.args, call.kwargs)
