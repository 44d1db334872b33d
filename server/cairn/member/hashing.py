"""HashKV and Hash on a running member, without stalling it.

A hash reads the whole history (HashKV) or the whole database (Hash): millions of records on
a big member, seconds of work. Done in one go on the event loop it would hold up heartbeats
(the leader would lose its leadership, a follower would start an election) and every client
request, just because an operator ran `etcdctl endpoint hashkv --cluster` or the periodic
corruption check came round. Here the store hashes in chunks from a LevelDB snapshot and the
event loop runs other tasks between two chunks.

The snapshot keeps the records still, but not everything a hash depends on: a compaction
applied meanwhile changes which old records the key index holds, and an image swap or a
defragmentation replaces the database (and closes the snapshot's files). The store notices
at the next chunk (HashInterrupted); the hash then starts again on the member's state as it
is now, which answers what a request arriving now would get (ErrCompacted when the asked
revision was compacted meanwhile). After MAX_ATTEMPTS interrupted starts the caller gets
ErrHashAborted and may retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from cairn.errors import ErrHashAborted, ErrStopped
from cairn.mvcc.backend import (
    HASH_CHUNK_RECORDS,
    Backend,
    HashInterrupted,
    HashSteps,
    run_steps_yielding,
)
from cairn.mvcc.store import KVHash, MVCCStore

log = logging.getLogger("cairn.member")

MAX_ATTEMPTS = 3

T = TypeVar("T")


async def hash_kv(
    current_store: Callable[[], MVCCStore], rev: int, chunk_records: int = HASH_CHUNK_RECORDS
) -> KVHash:
    """HashKV at `rev` (0: the current revision) of the member's store as it is then.

    `current_store` is asked again at each start: an installed image replaces the store.
    """

    def steps() -> HashSteps[KVHash]:
        store = current_store()
        if store.closed:
            raise ErrStopped()
        return store.hash_kv_steps(rev, chunk_records)

    return await _with_restarts("HashKV", steps)


async def hash_all(
    current_backend: Callable[[], Backend], chunk_records: int = HASH_CHUNK_RECORDS
) -> int:
    """Maintenance.Hash: every record of the member's database (see Backend.hash_all)."""

    def steps() -> HashSteps[int]:
        backend = current_backend()
        if backend.db.closed:
            raise ErrStopped()
        return backend.hash_all_steps(chunk_records)

    return await _with_restarts("Hash", steps)


async def _with_restarts(what: str, start: Callable[[], HashSteps[T]]) -> T:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await run_steps_yielding(start())
        except HashInterrupted as why:
            log.info("%s interrupted (%s); attempt %d of %d", what, why, attempt, MAX_ATTEMPTS)
    raise ErrHashAborted()
