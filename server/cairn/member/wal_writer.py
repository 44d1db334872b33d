"""A dedicated thread that writes and fdatasyncs WAL batches for the event loop.

fdatasync releases the GIL, so while the thread waits on the disk the event loop keeps
decoding requests, which then form the next batch (group commit). One long-lived thread fed by
a queue costs less per batch than handing each batch to a thread pool.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence

from cairn.wal import WAL, Entry, HardState

_STOP = None


class WALWriter:
    """Runs `WAL.save` calls one at a time, in order, off the event loop."""

    def __init__(self, wal: WAL, loop: asyncio.AbstractEventLoop) -> None:
        self._wal = wal
        self._loop = loop
        self._jobs: queue.SimpleQueue[
            tuple[Sequence[Entry], HardState | None, asyncio.Future[None]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="cairn-wal", daemon=True)
        self._thread.start()

    def save(self, entries: Sequence[Entry], hard_state: HardState | None) -> asyncio.Future[None]:
        """Queue a save; the future resolves once the batch is durable."""
        done: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put((entries, hard_state, done))
        return done

    def close(self) -> None:
        """Finish queued saves and end the thread."""
        self._jobs.put(_STOP)
        self._thread.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            entries, hard_state, done = job
            try:
                self._wal.save(entries, hard_state)
            except BaseException as error:  # handed to the waiting coroutine
                self._loop.call_soon_threadsafe(_fail, done, error)
            else:
                self._loop.call_soon_threadsafe(_succeed, done)


def _succeed(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _fail(done: asyncio.Future[None], error: BaseException) -> None:
    if not done.done():
        done.set_exception(error)
