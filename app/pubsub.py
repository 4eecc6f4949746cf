"""In-process publish/subscribe for live dashboards (GraphQL subscriptions).

One server process delivers to its own subscribers. With several workers a
publish must cross processes: PostgreSQL's LISTEN/NOTIFY (or Redis pub/sub)
would carry the topic name, and each worker's listener would call
``publish`` locally; the subscription code stays as it is.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Broker:
    def __init__(self, queue_size: int = 16) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[None]]] = defaultdict(set)
        self._queue_size = queue_size

    def publish(self, topic: str) -> None:
        """Wake every subscriber of ``topic``; a slow one sees one wake-up, not a backlog."""
        for queue in self._subscribers.get(topic, ()):
            if queue.empty():
                queue.put_nowait(None)

    @asynccontextmanager
    async def listen(self, topic: str) -> AsyncIterator[asyncio.Queue[None]]:
        queue: asyncio.Queue[None] = asyncio.Queue(self._queue_size)
        self._subscribers[topic].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[topic].discard(queue)
            if not self._subscribers[topic]:
                del self._subscribers[topic]

    def subscribers(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))
