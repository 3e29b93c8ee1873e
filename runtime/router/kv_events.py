"""vLLM's KV-cache events, read from its ZMQ publisher: what each worker really stores and evicts.

A vLLM started with ``--kv-events-config '{"enable_kv_cache_events": true, "publisher": "zmq",
"endpoint": "tcp://*:5557"}'`` publishes, on a ZMQ PUB socket, one multipart message per engine
step that changed its prefix cache: ``(topic, seq, payload)``, where ``seq`` is an 8-byte big-endian
counter and ``payload`` a msgpack ``KVEventBatch`` (``vllm/distributed/kv_events.py``): an array
``[ts, events, data_parallel_rank]`` whose events are maps tagged by ``type``:

* ``BlockStored``: ``block_hashes`` (one per full block, ints unless
  ``VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0``), ``parent_block_hash`` (the block before the first, None
  at the start of a prompt), ``token_ids`` (the tokens of all these blocks, in order), ``block_size``,
  ``extra_keys`` (per block, what besides its tokens vLLM hashed into it: a cache salt on a
  prompt's first block, images, prompt embeddings; None for a block of tokens alone);
* ``BlockRemoved``: ``block_hashes`` evicted;
* ``AllBlocksCleared``: the cache was reset.

The structs below mirror vLLM's (the router does not import vLLM); fields the router does not use
are ignored, and an event of an unknown type is skipped. :class:`KvEventSubscriber` keeps one SUB
socket per worker and hands every decoded batch to a :class:`KvEventSink`; a gap in ``seq`` (events
lost to the publisher's high-water mark, or a worker restart) is reported, so the sink can forget
what it can no longer trust. Messages are bounded in size (``max_message_bytes``).

A PUB socket drops what it publishes before a subscriber's connection is through (ZMQ's "slow
joiner"), so a router that routes at once after starting would miss the events of its first
requests: :meth:`KvEventSubscriber.joined` waits, bounded, until every subscription's handshake is
done, which the router's start awaits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import msgspec
import zmq
import zmq.asyncio

__all__ = [
    "AllBlocksCleared",
    "BlockRemoved",
    "BlockStored",
    "KvEventBatch",
    "KvEventSink",
    "KvEventSubscriber",
    "decode_batch",
]

log = logging.getLogger("grove.router.kv_events")

JOIN_SETTLE = 0.02
"""Seconds :meth:`KvEventSubscriber.joined` waits after the handshakes for the subscriptions to land."""

BlockHash = int | bytes


class BlockStored(msgspec.Struct, tag=True):
    """Full blocks a worker now holds, chained after ``parent_block_hash``."""

    block_hashes: list[BlockHash]
    parent_block_hash: BlockHash | None = None
    token_ids: list[int] = msgspec.field(default_factory=list)
    block_size: int = 0
    lora_name: str | None = None
    medium: str | None = None
    extra_keys: list[Any] | None = None


class BlockRemoved(msgspec.Struct, tag=True):
    """Blocks a worker evicted."""

    block_hashes: list[BlockHash]
    medium: str | None = None


class AllBlocksCleared(msgspec.Struct, tag=True):
    """The worker's prefix cache was reset."""


KvEvent = BlockStored | BlockRemoved | AllBlocksCleared


class _RawBatch(msgspec.Struct, array_like=True):
    ts: float
    events: list[msgspec.Raw]
    data_parallel_rank: int | None = None


class KvEventBatch(msgspec.Struct):
    """One decoded batch: the events a worker published in one engine step."""

    ts: float
    events: list[KvEvent]
    skipped: int = 0


_batch_decoder = msgspec.msgpack.Decoder(_RawBatch)
_event_decoder = msgspec.msgpack.Decoder(KvEvent)


def decode_batch(payload: bytes) -> KvEventBatch:
    """Decode one payload; events of unknown types or shapes are counted in ``skipped``, not fatal.

    Raises:
        msgspec.DecodeError: the payload is not a KV event batch at all.
    """
    raw = _batch_decoder.decode(payload)
    events: list[KvEvent] = []
    skipped = 0
    for item in raw.events:
        try:
            events.append(_event_decoder.decode(item))
        except (msgspec.DecodeError, msgspec.ValidationError):
            skipped += 1
    return KvEventBatch(ts=raw.ts, events=events, skipped=skipped)


class KvEventSink(Protocol):
    """Receives the events of one worker."""

    def apply(self, url: str, batch: KvEventBatch) -> None: ...

    def lost(self, url: str, reason: str) -> None: ...


class KvEventSubscriber:
    """One SUB socket per worker URL, each read by its own task until :meth:`close`."""

    def __init__(self, sink: KvEventSink, *, topic: str = "", max_message_bytes: int = 64 * 2**20) -> None:
        self.sink = sink
        self.topic = topic.encode()
        self.max_message_bytes = max_message_bytes
        self._ctx: zmq.asyncio.Context | None = None
        # url -> (endpoint, reader task, set once the subscription's handshake is done)
        self._tasks: dict[str, tuple[str, asyncio.Task[None], asyncio.Event]] = {}
        self._live: set[asyncio.Task[None]] = set()  # readers not yet done, unsubscribed ones included
        self.batches: dict[str, int] = {}

    def endpoints(self) -> dict[str, str]:
        """Worker URL → the endpoint it is subscribed to."""
        return {url: endpoint for url, (endpoint, _, _) in self._tasks.items()}

    def follows(self, url: str) -> bool:
        """Whether ``url``'s events are subscribed to (asked on every routing decision: no copy made)."""
        return url in self._tasks

    def subscribe(self, url: str, endpoint: str) -> None:
        """Follow ``url``'s events at ``endpoint`` (a ZMQ address such as ``tcp://10.0.0.5:5557``)."""
        current = self._tasks.get(url)
        if current is not None and current[0] == endpoint:
            return
        self.unsubscribe(url)
        if self._ctx is None:
            self._ctx = zmq.asyncio.Context()
        joined = asyncio.Event()
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        sock.setsockopt(zmq.SUBSCRIBE, self.topic)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            log.warning("KV events of %s at %s: cannot connect: %s", url, endpoint, exc)
            sock.close(linger=0)
            monitor.close(linger=0)
            return
        loop = asyncio.get_running_loop()
        watcher = loop.create_task(_watch_join(monitor, joined), name=f"kv-events join {url}")
        task = loop.create_task(self._read(url, endpoint, sock), name=f"kv-events {url}")
        self._live.add(task)
        task.add_done_callback(self._live.discard)
        task.add_done_callback(lambda _: _close(sock, monitor, watcher))  # also when cancelled before it ran
        self._tasks[url] = (endpoint, task, joined)

    async def joined(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until every subscription's connection is through.

        False when one is not (its worker not up yet): its events count from when it joins.
        """
        waits = [joined.wait() for _, _, joined in self._tasks.values()]
        if not waits:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            return False
        # the subscription follows the handshake on the same connection and the publisher applies it
        # at its next send: a few milliseconds cover it (measured: without them 1 in 10 over TCP lost)
        await asyncio.sleep(JOIN_SETTLE)
        return True

    def unsubscribe(self, url: str) -> None:
        """Stop following ``url``."""
        entry = self._tasks.pop(url, None)
        if entry is not None:
            entry[1].cancel()
        self.batches.pop(url, None)

    async def close(self) -> None:
        """Stop every reader and close the sockets."""
        tasks = list(self._live)
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        # their done callbacks (registered before gather's) have closed the sockets: term can end
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    async def _read(self, url: str, endpoint: str, sock: zmq.asyncio.Socket) -> None:
        last: int | None = None
        try:
            while True:
                frames = await sock.recv_multipart()
                if len(frames) != 3 or len(frames[1]) != 8:
                    continue
                seq = int.from_bytes(frames[1], "big", signed=True)
                if last is not None and seq != last + 1:
                    self.sink.lost(url, f"event sequence jumped from {last} to {seq}")
                last = seq
                try:
                    batch = decode_batch(frames[2])
                except (msgspec.DecodeError, msgspec.ValidationError):
                    log.warning("undecodable KV event batch from %s", url)
                    continue
                self.batches[url] = self.batches.get(url, 0) + 1
                self.sink.apply(url, batch)
        except asyncio.CancelledError:
            raise
        except zmq.ZMQError as exc:
            log.warning("KV events of %s at %s stopped: %s", url, endpoint, exc)


async def _watch_join(monitor: zmq.asyncio.Socket, joined: asyncio.Event) -> None:
    """Set ``joined`` at the first completed handshake (the subscription goes out with it)."""
    await monitor.recv_multipart()  # the monitor reports only EVENT_HANDSHAKE_SUCCEEDED
    joined.set()


def _close(sock: zmq.asyncio.Socket, monitor: zmq.asyncio.Socket, watcher: asyncio.Task[None]) -> None:
    """Close a subscription's sockets (a context's ``term`` waits for every socket to be closed)."""
    watcher.cancel()
    sock.disable_monitor()
    monitor.close(linger=0)
    sock.close(linger=0)
