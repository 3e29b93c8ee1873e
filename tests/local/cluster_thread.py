"""A :class:`LocalCluster` on its own event-loop thread, so synchronous tests can drive it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from grove_pipelines.local.cluster import LocalCluster

T = TypeVar("T")


class ClusterThread:
    """Runs ``cluster`` on a private loop; :meth:`call` runs a coroutine there and waits for it."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="local-cluster")
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def run(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """A plain function on the loop's thread (the cluster is not thread-safe)."""

        async def wrapper() -> Any:
            return func(*args, **kwargs)

        return self.call(wrapper(), timeout=30)

    def close(self, timeout: float = 180) -> None:
        try:
            self.call(self.cluster.stop(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
