"""``decode_like_stdlib`` against the standard library's decoder itself: the same value or the same error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.http.json_wire import decode_like_stdlib

pytestmark = pytest.mark.timeout(120)


def _outcome(decode: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "value", _typed(decode(raw))
    except (ValueError, RecursionError) as exc:
        return "error", (type(exc), str(exc))


def _typed(value: Any) -> Any:
    """``value`` with every leaf's type beside it (1 and 1.0 and True are equal in Python, not in JSON)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, float):
        return (float, repr(value))  # -0.0, inf
    return (type(value), value)


EDGES = [
    b'{"a":1,"a":2}',  # duplicate keys: the last wins
    b'"\\ud800"',  # a lone surrogate, escaped
    b'"\xed\xa0\x80"',  # a surrogate as raw bytes
    b'"\xff"',
    b"\xef\xbb\xbf{}",  # a byte-order mark
    '{"a": "b"}'.encode("utf-16"),
    '{"a": "b"}'.encode("utf-32-le"),
    b' {"a" : [1, 2.5e3, -0, -0.0, 1e400, 1e-400]} ',
    b"NaN",
    b"[-Infinity]",
    b'"\x01"',
    b"[" * 3000 + b"]" * 3000,
    b"1 2",
    b"",
    b"  ",
    b'{"a":1}\x00',
    b"9" * 5000,
    b"123456789012345678901234567890123",
    b"-123456789012345678901234567890.5e-3",
    b"1.7976931348623157e308",
    b"01",
    b'"\\u0000\\n\\"\\/"',
    '"snow \u2603 and \U0001f600"'.encode(),
]


@pytest.mark.parametrize("raw", EDGES, ids=range(len(EDGES)))
def test_the_edges_decode_as_the_standard_library_decodes_them(raw: bytes) -> None:
    assert _outcome(decode_like_stdlib, raw) == _outcome(json.loads, raw)


def test_the_given_standard_decoder_decides_what_msgspec_refuses() -> None:
    def strict(raw: bytes) -> Any:
        raise ValueError("refused")

    assert decode_like_stdlib(b'{"a": [1]}', strict) == {"a": [1]}
    with pytest.raises(ValueError, match="refused"):
        decode_like_stdlib(b"NaN", strict)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json_values, st.booleans())
def test_any_json_decodes_as_the_standard_library_decodes_it(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _outcome(decode_like_stdlib, raw) == _outcome(json.loads, raw)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40))
def test_any_bytes_decode_as_the_standard_library_decodes_them(raw: bytes) -> None:
    assert _outcome(decode_like_stdlib, raw) == _outcome(json.loads, raw)
