"""Physical compaction: deleting the history a compaction dropped, after the apply.

Applying a compaction only moves the key index; the records it made obsolete are deleted
afterwards, in chunks that yield to the event loop, so a compaction of millions of revisions
does not stall requests. Compactions finish strictly in order: recording a later one as
finished while an earlier one still has records to delete would make a restart forget them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cairn.mvcc.revision import Revision
from cairn.mvcc.store import MVCCStore

log = logging.getLogger("cairn.member")

CHUNK = 10_000


class CompactionDeleter:
    """Runs one deletion at a time, in the order compactions were applied."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[MVCCStore, int, list[Revision]]] = asyncio.Queue()
        self._finished = asyncio.Condition()
        self.finished_rev = 0
        self._task: asyncio.Task[None] | None = None

    def schedule(self, store: MVCCStore, rev: int, obsolete: list[Revision]) -> None:
        """Queue the deletion of `obsolete`, dropped by the compaction at `rev` in `store`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="compaction")
        self._queue.put_nowait((store, rev, obsolete))

    async def wait(self, rev: int) -> None:
        """Until the compaction at `rev` (and every earlier one) has deleted its records."""
        async with self._finished:
            await self._finished.wait_for(lambda: self.finished_rev >= rev)

    async def _run(self) -> None:
        while True:
            store, rev, obsolete = await self._queue.get()
            if not store.closed:
                for start in range(0, len(obsolete), CHUNK):
                    if store.closed:
                        break  # the store was replaced (an image) or the member stops
                    store.delete_history(obsolete[start : start + CHUNK])
                    await asyncio.sleep(0)
                else:
                    store.finish_compaction(rev)
                    log.info(
                        "finished compaction at revision %d: %d records removed",
                        rev,
                        len(obsolete),
                    )
            # A replaced store finishes its own interrupted compaction when it is reopened.
            async with self._finished:
                self.finished_rev = max(self.finished_rev, rev)
                self._finished.notify_all()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
