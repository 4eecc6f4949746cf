"""Publish/subscribe for live dashboards (GraphQL subscriptions).

A publish wakes this worker's subscribers at once and goes to the deployment's other workers
through ``relay`` (``app.coordination``: Redis pub/sub or PostgreSQL NOTIFY), whose listeners
call ``deliver``. A worker never hears its own messages back, so nobody is woken twice for one
publish. A wake-up carries no data: the subscriber reads what it serves afresh, through its
own scope checks, so a message can never leak what its receiver may not see.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class Broker:
    def __init__(
        self,
        relay: Callable[[str], None] | None = None,
        on_listen: Callable[[], None] | None = None,
        queue_size: int = 16,
    ) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[None]]] = defaultdict(set)
        self._queue_size = queue_size
        self._relay = relay
        self._on_listen = on_listen  # starts the bus's listener if nothing has yet

    def publish(self, topic: str) -> None:
        """After a commit: wake ``topic``'s subscribers here and in every other worker."""
        self.deliver(topic)
        if self._relay is not None:
            self._relay(topic)

    def deliver(self, topic: str) -> None:
        """Wake this worker's subscribers of ``topic``; a slow one sees one wake-up, not a backlog."""
        for queue in self._subscribers.get(topic, ()):
            if queue.empty():
                queue.put_nowait(None)

    def deliver_all(self) -> None:
        """After the bus was down: any topic may have changed meanwhile."""
        for topic in list(self._subscribers):
            self.deliver(topic)

    @asynccontextmanager
    async def listen(self, topic: str) -> AsyncIterator[asyncio.Queue[None]]:
        if self._on_listen is not None:
            self._on_listen()
        queue: asyncio.Queue[None] = asyncio.Queue(self._queue_size)
        self._subscribers[topic].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[topic].discard(queue)
            if not self._subscribers[topic]:
                del self._subscribers[topic]

    def open_subscriptions(self) -> int:
        """Subscriptions open in this worker, over every topic."""
        return sum(len(queues) for queues in self._subscribers.values())

    def subscribers(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))
