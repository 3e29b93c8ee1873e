"""KV-cache events: vLLM's own publisher and structs on one side, the router's decoder, subscriber and index on the other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from runtime.router.kv_events import BlockRemoved, BlockStored, KvEventBatch, KvEventSubscriber, decode_batch
from runtime.router.policies.cache.kv_index import KvBlockIndex, chain_keys

pytestmark = pytest.mark.timeout(60)

# vLLM's own structs and publisher are the reference; imported on first use, not at collection, so
# that tests which check that a command imports nothing heavy still see a process without vLLM.


def _vllm() -> Any:
    from vllm.distributed import kv_events

    return kv_events


URL = "http://w0"


def stored(
    hashes: list[int], tokens: list[int], parent: int | None = None, size: int = 4, extra_keys: Any = None
) -> Any:
    return _vllm().BlockStored(
        block_hashes=hashes,
        parent_block_hash=parent,
        token_ids=tokens,
        block_size=size,
        lora_id=None,
        medium="GPU",
        lora_name=None,
        extra_keys=extra_keys,
    )


def batch(*events: object) -> bytes:
    return msgspec.msgpack.encode(_vllm().KVEventBatch(ts=time.time(), events=list(events)))


def test_decodes_vllms_own_encoding_and_skips_unknown_event_types() -> None:
    payload = batch(stored([11, 12], list(range(8))), _vllm().BlockRemoved(block_hashes=[12], medium="GPU"))
    raw = msgspec.msgpack.decode(payload)
    raw[1].append({"type": "SomeFutureEvent", "x": 1})
    out = decode_batch(msgspec.msgpack.encode(raw))
    assert out.skipped == 1
    assert out.events == [
        BlockStored(block_hashes=[11, 12], token_ids=list(range(8)), block_size=4, medium="GPU"),
        BlockRemoved(block_hashes=[12], medium="GPU"),
    ]
    with pytest.raises(msgspec.DecodeError):
        decode_batch(b"\xc1not msgpack")


def _apply(index: KvBlockIndex, *events: object) -> None:
    index.apply(URL, decode_batch(batch(*events)))


def test_index_follows_stores_chains_removals_and_clears() -> None:
    index = KvBlockIndex()
    prompt = list(range(100, 114))  # 3 full blocks of 4 and 2 tokens more
    keys = chain_keys(prompt, 4)
    assert len(keys) == 3
    # vLLM stores the first two blocks in one event, the third (chained to hash 2) in another
    _apply(index, stored([1, 2], prompt[:8]))
    _apply(index, stored([3], prompt[8:12], parent=2))
    assert index.overlap(URL, keys) == (3, 0)
    assert index.block_size(URL) == 4
    # another prompt that shares the first block only
    other = [*prompt[:4], 7, 7, 7, 7]
    assert index.overlap(URL, chain_keys(other, 4)) == (1, 0)
    # evicting the middle block breaks the chain after the first
    _apply(index, _vllm().BlockRemoved(block_hashes=[2], medium="GPU"))
    assert index.overlap(URL, keys) == (1, 0)
    assert index.size(URL) == 2
    _apply(index, _vllm().AllBlocksCleared())
    assert index.overlap(URL, keys) == (0, 0) and index.size(URL) == 0


def test_blocks_whose_parent_the_index_never_saw_are_not_claimed() -> None:
    index = KvBlockIndex()
    prompt = list(range(8))
    _apply(index, stored([9], prompt[4:8], parent=8))  # the event of block 8 was lost
    assert index.overlap(URL, chain_keys(prompt, 4)) == (0, 0)
    assert index.size(URL) == 0


def test_blocks_vllm_keyed_by_more_than_their_tokens_are_not_claimed() -> None:
    """A salted prompt's blocks, or the blocks from an image on, are not what a prompt of tokens reuses."""
    from vllm.v1.core.kv_cache_utils import to_event_extra_keys

    prompt = list(range(100, 112))
    keys = chain_keys(prompt, 4)
    salted = KvBlockIndex()  # vLLM hashes a cache salt into a prompt's first block (so into all after it)
    _apply(
        salted,
        stored([1, 2, 3], prompt, extra_keys=to_event_extra_keys([(("cache_salt", "s"),), None, None])),
    )
    assert salted.overlap(URL, keys) == (0, 0) and salted.size(URL) == 0
    _apply(salted, stored([4], prompt[:4]))  # the same tokens unsalted: a block of tokens alone
    assert salted.overlap(URL, keys) == (1, 0)
    image = KvBlockIndex()  # an image's placeholder tokens in the second block
    _apply(
        image, stored([1, 2, 3], prompt, extra_keys=to_event_extra_keys([None, (("mm", "img", 0),), None]))
    )
    assert image.overlap(URL, keys) == (1, 0) and image.size(URL) == 1
    _apply(image, stored([9], prompt[8:12], parent=3))  # chained after an unclaimed block
    assert image.size(URL) == 1


def test_pending_keys_count_until_their_ttl() -> None:
    index = KvBlockIndex(pending_ttl=5.0)
    keys = chain_keys(list(range(12)), 4)
    _apply(index, stored([1], list(range(4))))
    index.add_pending(URL, keys, now=100.0)
    assert index.overlap(URL, keys, now=101.0) == (1, 2)
    assert index.overlap(URL, keys, now=106.0) == (1, 0)


class _Sink:
    def __init__(self) -> None:
        self.index = KvBlockIndex()
        self.lost_reasons: list[str] = []

    def apply(self, url: str, batch: KvEventBatch) -> None:
        self.index.apply(url, batch)

    def lost(self, url: str, reason: str) -> None:
        self.lost_reasons.append(reason)
        self.index.clear(url)


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        await asyncio.sleep(0.02)
    return check()


async def test_subscriber_reads_vllms_zmq_publisher(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path / 'events.sock'}"
    publisher = _vllm().ZmqEventPublisher(data_parallel_rank=0, endpoint=endpoint)
    sink = _Sink()
    subscriber = KvEventSubscriber(sink)
    try:
        subscriber.subscribe(URL, endpoint)
        keys = chain_keys(list(range(8)), 4)
        # a PUB socket drops messages until the subscription is through: publish until one arrives
        deadline = time.monotonic() + 10
        while sink.index.size(URL) == 0 and time.monotonic() < deadline:
            publisher.publish(_vllm().KVEventBatch(ts=time.time(), events=[stored([1, 2], list(range(8)))]))
            await asyncio.sleep(0.05)
        assert sink.index.overlap(URL, keys) == (2, 0)
        publisher.publish(
            _vllm().KVEventBatch(
                ts=time.time(), events=[_vllm().BlockRemoved(block_hashes=[1], medium="GPU")]
            )
        )
        assert await _until(lambda: sink.index.overlap(URL, keys) == (0, 0))
        assert sink.lost_reasons == []
    finally:
        await subscriber.close()
        publisher.shutdown()


async def test_a_sequence_gap_makes_the_index_forget_the_worker(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path / 'gap.sock'}"
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(endpoint)
    sink = _Sink()
    subscriber = KvEventSubscriber(sink)
    try:
        subscriber.subscribe(URL, endpoint)
        seq = 0
        deadline = time.monotonic() + 10
        while sink.index.size(URL) == 0 and time.monotonic() < deadline:
            pub.send_multipart([b"", seq.to_bytes(8, "big"), batch(stored([seq + 1], [seq] * 4))])
            seq += 1
            await asyncio.sleep(0.05)
        assert sink.index.size(URL) >= 1
        pub.send_multipart([b"", (seq + 5).to_bytes(8, "big"), batch()])  # five batches never arrived
        assert await _until(lambda: bool(sink.lost_reasons))
        assert "jumped" in sink.lost_reasons[0] and sink.index.size(URL) == 0
        # a malformed frame is ignored, and reading goes on
        pub.send_multipart([b"", b"short"])
        pub.send_multipart([b"", (seq + 6).to_bytes(8, "big"), batch(stored([99], [5] * 4))])
        assert await _until(lambda: sink.index.size(URL) == 1)
    finally:
        await subscriber.close()
        pub.close(linger=0)
        ctx.term()


async def test_once_joined_the_first_batch_published_arrives() -> None:
    """The slow joiner: a PUB socket drops what it sends before the subscription is through.

    After ``joined`` the very first batch, sent once, reaches the index; this is what lets a router
    that has just started learn from its first request's events.
    """
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind("tcp://127.0.0.1:*")  # over TCP the handshake takes longest: without the join, lost 9 in 10
    endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
    payload = batch(stored([1, 2], list(range(8))))  # built first: vLLM's import would give the join time
    sink = _Sink()
    subscriber = KvEventSubscriber(sink)
    try:
        subscriber.subscribe(URL, endpoint)
        assert await subscriber.joined(10.0)
        pub.send_multipart([b"", (0).to_bytes(8, "big"), payload])
        assert await _until(lambda: sink.index.size(URL) == 2)
        assert sink.lost_reasons == []
    finally:
        await subscriber.close()
        pub.close(linger=0)
        ctx.term()


async def test_joined_gives_up_in_time_on_a_worker_that_publishes_nothing(tmp_path: Path) -> None:
    """A worker not up yet (nothing bound at its address): ``joined`` answers False after its timeout."""
    subscriber = KvEventSubscriber(_Sink())
    try:
        subscriber.subscribe(URL, f"ipc://{tmp_path / 'nobody.sock'}")
        started = time.monotonic()
        assert not await subscriber.joined(0.3)
        assert 0.25 <= time.monotonic() - started < 5
        subscriber.unsubscribe(URL)
        assert await subscriber.joined(0.3)  # nothing left to wait for
    finally:
        await asyncio.wait_for(subscriber.close(), 5)  # every socket closed, or the context's term would hang
