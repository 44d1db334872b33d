"""A bounded per-peer queue that never blocks the producer and hands out whole batches.

``asyncio.Queue`` would do for the bound, but taking a batch would cost one ``get`` per
message, and waking the consumer for a reason other than a new message (a broken stream, a
stop) would need a second task. A deque and an event do both directly.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Outbox:
    """Payloads waiting for one peer's stream, oldest first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: deque[bytes] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, payload: bytes) -> bool:
        """Queue ``payload``; False (and nothing queued) when the outbox is full."""
        if len(self._items) >= self._capacity:
            return False
        self._items.append(payload)
        self._ready.set()
        return True

    def clear(self) -> int:
        """Throw away everything queued; returns how many payloads that was."""
        count = len(self._items)
        self._items.clear()
        return count

    def wake(self) -> None:
        """Make a pending ``wait`` return even if nothing was queued."""
        self._ready.set()

    async def wait(self) -> None:
        """Return once something is queued or ``wake`` was called (maybe before this call).

        May return with nothing queued; the caller re-checks its state and waits again. A
        spurious return is harmless, whereas clearing the event before waiting would lose a
        ``wake`` that came first.
        """
        if not self._items:
            await self._ready.wait()
        self._ready.clear()

    def take_batch(self, max_bytes: int) -> list[bytes]:
        """Remove and return the oldest payloads up to ``max_bytes`` (always at least one)."""
        items = self._items
        batch: list[bytes] = []
        size = 0
        while items and (not batch or size + len(items[0]) <= max_bytes):
            payload = items.popleft()
            size += len(payload)
            batch.append(payload)
        return batch
