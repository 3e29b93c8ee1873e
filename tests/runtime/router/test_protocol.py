"""The bodies of the two legs, field by field (DESIGN §4.5, vllm-on-cpu notes §5a)."""

from __future__ import annotations

from runtime.router.legs import decode_body, prefill_body


def test_prefill_body_follows_the_nixl_protocol() -> None:
    body = {
        "model": "m",
        "prompt": "p",
        "max_tokens": 50,
        "max_completion_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
        "min_tokens": 3,
        "temperature": 0,
    }
    out = prefill_body(body)
    assert out["kv_transfer_params"] == {
        "do_remote_decode": True,
        "do_remote_prefill": False,
        "remote_engine_id": None,
        "remote_block_ids": None,
        "remote_host": None,
        "remote_port": None,
    }
    assert (out["stream"], out["max_tokens"], out["max_completion_tokens"]) == (False, 1, 1)
    assert "stream_options" not in out and "min_tokens" not in out and out["temperature"] == 0
    assert body["max_tokens"] == 50 and body["stream"] is True  # the original is untouched
    kv = {"remote_engine_id": "e", "remote_block_ids": [[1]]}
    assert decode_body(body, kv) == {**body, "kv_transfer_params": kv}
