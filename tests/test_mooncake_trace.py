"""The Mooncake-format replay: shared hash ids become shared text prefixes, lengths and time scale as asked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.bench.mooncake_trace import (
    MooncakeRecord,
    MooncakeReplay,
    block_text,
    load_mooncake,
    mooncake_to_trace,
    prompt_of,
)

pytestmark = pytest.mark.timeout(60)

SHARED_TRACE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mooncake_synthetic_trace.jsonl"
)


def _record(ts: int, input_length: int, ids: list[int], out: int = 5) -> MooncakeRecord:
    return MooncakeRecord(timestamp=ts, input_length=input_length, output_length=out, hash_ids=ids)


def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def test_shared_hash_ids_give_shared_text_prefixes_exactly_block_aligned() -> None:
    replay = MooncakeReplay(block_chars=100)
    a = prompt_of(_record(0, 3 * 512, [7, 8, 9]), replay)
    b = prompt_of(_record(0, 3 * 512, [7, 8, 10]), replay)
    c = prompt_of(_record(0, 3 * 512, [11, 8, 9]), replay)
    # two equal leading ids: exactly the first 200 characters agree (the third blocks differ at once,
    # unless two word salads happen to start with the same letters: allow that only below one word)
    assert a[:200] == b[:200]
    assert 200 <= _common_prefix(a, b) < 200 + 12
    # a different first id shares nothing at the start, even though later ids are equal
    assert _common_prefix(a, c) < 12
    # the same id at the same position is the same text wherever it appears
    assert a[100:200] == c[100:200] == block_text(8, 100)


def test_lengths_scale_with_the_block_to_text_ratio_and_the_tail_is_cut() -> None:
    replay = MooncakeReplay(block_chars=64)
    full = prompt_of(_record(0, 4 * 512, [1, 2, 3, 4]), replay)
    assert len(full) == 4 * 64
    # 2 full blocks and a 128-token tail (a quarter of a block): 2 x 64 + 16 characters
    tail = prompt_of(_record(0, 2 * 512 + 128, [1, 2, 5]), replay)
    assert len(tail) == 2 * 64 + 16
    assert tail[:128] == full[:128]
    # beyond max_blocks the prompt keeps its leading blocks only (no tail cut on a truncated prompt)
    capped = prompt_of(
        _record(0, 10 * 512 + 7, list(range(1, 12))), MooncakeReplay(block_chars=64, max_blocks=3)
    )
    assert capped == full[: 3 * 64]


def test_window_time_compression_output_cap_and_sessions() -> None:
    records = [
        _record(0, 512, [1], out=3),
        _record(1000, 1024, [1, 2], out=300),
        _record(2500, 512, [9], out=1),
        _record(9000, 512, [4]),
    ]
    trace = mooncake_to_trace(
        records, MooncakeReplay(start_ms=1000, duration_ms=5000, time_compression=10, max_tokens=16)
    )
    assert [s.arrival_s for s in trace.sessions] == [0.0, 0.15]  # 1500 ms later, compressed 10x
    assert [s.session_id for s in trace.sessions] == ["h1", "h9"]  # the root block names the conversation
    assert [s.turns[0].max_tokens for s in trace.sessions] == [16, 1]
    assert len(mooncake_to_trace(records, MooncakeReplay(max_requests=2)).sessions) == 2
    # a sample of conversations: the roots that are multiples of 3 (here 9 only)
    assert [s.session_id for s in mooncake_to_trace(records, MooncakeReplay(sample_every=3)).sessions] == [
        "h9"
    ]


def test_loads_any_file_in_the_format_and_names_a_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "t.jsonl"
    good.write_text(
        json.dumps({"timestamp": 5, "input_length": 600, "output_length": 2, "hash_ids": [3, 4]}) + "\n\n"
    )
    assert load_mooncake(good) == [_record(5, 600, [3, 4], out=2)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"timestamp": -1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not a Mooncake trace record"):
        load_mooncake(bad)


@pytest.mark.skipif(not SHARED_TRACE.exists(), reason="needs ../shared/data")
def test_the_shared_synthetic_trace_replays_with_shared_prefixes() -> None:
    records = load_mooncake(SHARED_TRACE)
    assert len(records) == 3993
    trace = mooncake_to_trace(records, MooncakeReplay(max_requests=200, block_chars=64, max_blocks=8))
    # among prompts whose first block is whole (tiny one-block prompts are a few characters, which
    # may coincide), a repeated first text is exactly a repeated first hash id of the trace
    whole = [i for i, r in enumerate(records[:200]) if len(r.hash_ids) >= 2]
    firsts = [trace.sessions[i].turns[0].messages[0]["content"][:64] for i in whole]
    seen: set[int] = set()
    repeats = 0
    for i in whole:
        repeats += records[i].hash_ids[0] in seen
        seen.add(records[i].hash_ids[0])
    assert sum(firsts[i] in set(firsts[:i]) for i in range(len(firsts))) == repeats > 0
