"""A stage call's JSON body in one pass (``encode_json``) says what the two-pass ``encode`` said."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from pydantic import BaseModel

from runtime.server.value_codec import encode_json


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
