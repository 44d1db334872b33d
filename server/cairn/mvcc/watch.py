"""The watch hub: turns every applied revision into events for the watchers of its keys.

Each member owns one hub, fed by its own apply loop (`notify`, called after every flush with
the revisions of the group just applied, in order), so a watch on a follower sees the same
events at the same revisions as one on the leader.

Watchers are in one of two states, as in etcd:

- *synced*: the watcher has received (or had nothing to receive in) every revision up to the
  last one notified. Live revisions are handed to it directly from `notify`.
- *unsynced*: the watcher still needs revisions from `next_rev` on that are already in the
  store. A background task reads them from the history in LevelDB, a bounded chunk at a time
  (so a replay of millions of revisions never stalls the event loop), and moves the watcher
  to synced once it has caught up to the store's current revision. The last read and the move
  happen without yielding to the event loop, and `notify` only runs between two yields, so
  the handover can neither skip nor repeat a revision.

A watcher starts unsynced when its start revision is in the past. A synced watcher whose
stream cannot take more (its `WatchSink` is full: the client reads slower than the cluster
writes) is not waited for: it drops back to unsynced at the revision it missed and catches up
from the store once the stream drains. Writers and other watchers never wait for it. If the
history it needs is compacted away meanwhile, it gets the compaction revision and is
cancelled, exactly like a watch created at a compacted revision.

Everything here runs on the member's event loop; nothing is thread-safe, nothing needs to be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cairn.errors import EtcdError
from cairn.mvcc.backend import HISTORY
from cairn.mvcc.revision import Revision
from cairn.mvcc.store import RECORD_TOMBSTONE, MVCCStore, TxnChanges
from cairn.proto.kv_pb2 import Event, KeyValue

log = logging.getLogger("cairn.mvcc.watch")

# Event responses a stream may hold for one watcher (etcd buffers 128 per stream, drained by a
# goroutine of its own; here the sender shares the event loop, so a burst for 100 watchers of
# one stream must not overflow a shared bound). Beyond it the watcher falls back to the store.
SINK_CAPACITY = 128
# History read per step of a catch-up: at most this many records or bytes, finished at a
# revision boundary. etcd bounds its batches by revisions only (1000); the byte bound keeps a
# catch-up response under the 4 MiB most gRPC clients accept by default (clientv3 accepts any).
CATCH_UP_RECORDS = 1000
CATCH_UP_BYTES = 1024 * 1024
# How long the catch-up task waits before looking again at watchers whose stream was full.
RETRY_INTERVAL_S = 0.1


class SinkClosed(Exception):
    """The hub closed the sink (the member stops); `error` is what the client should see."""

    def __init__(self, error: EtcdError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class WatchEvents:
    """What the hub hands a stream for one watcher: events, or a compaction cancel.

    `revision` is the response header's revision: the revision of the events for live ones,
    the store revision at the time of the read for caught-up ones, and 0 for a compaction
    cancel (etcd leaves it unset there). An empty `events` with no compaction is a progress
    notification.
    """

    watcher: Watcher
    events: list[Event]
    revision: int
    compact_revision: int = 0


class WatchSink:
    """The outgoing responses of one watch stream, in order.

    Event deliveries are bounded (`offer` refuses when `capacity` are waiting for the same
    watcher): the hub must never block on a slow client. Control responses (created,
    canceled, progress replies) always fit, so they never get lost; they are rare and the
    client causes each one.
    """

    def __init__(self, capacity: int = SINK_CAPACITY) -> None:
        self.capacity = capacity
        self._items: list[object] = []
        self._head = 0
        self._pending: dict[Watcher, int] = {}  # event responses queued per watcher
        self._ready = asyncio.Event()
        self._closed: EtcdError | None = None
        # Called when a full sink has room again (the hub wakes its catch-up task).
        self.on_space: list[Callable[[], None]] = []

    def full_for(self, watcher: Watcher) -> bool:
        return self._pending.get(watcher, 0) >= self.capacity

    def offer(self, item: WatchEvents) -> bool:
        """Queue an event delivery unless the watcher's share is full or the sink closed."""
        pending = self._pending.get(item.watcher, 0)
        if self._closed is not None or pending >= self.capacity:
            return False
        self._items.append(item)
        self._pending[item.watcher] = pending + 1
        self._ready.set()
        return True

    def put_control(self, item: object) -> None:
        """Queue a control response; it is never refused (unless the sink is closed)."""
        if self._closed is None:
            self._items.append(item)
            self._ready.set()

    def close(self, error: EtcdError) -> None:
        """End the stream: `get` raises SinkClosed(error) once the queue is read."""
        if self._closed is None:
            self._closed = error
            self._ready.set()

    def __len__(self) -> int:
        return len(self._items) - self._head

    def get_nowait(self) -> object | None:
        """The next queued response, or None; raises SinkClosed at the end of a closed sink."""
        if self._head < len(self._items):
            item = self._items[self._head]
            self._items[self._head] = None
            self._head += 1
            if self._head > 1024 and self._head * 2 > len(self._items):
                del self._items[: self._head]
                self._head = 0
            if isinstance(item, WatchEvents):
                pending = self._pending.pop(item.watcher)
                if pending > 1:
                    self._pending[item.watcher] = pending - 1
                if pending == self.capacity:
                    for callback in list(self.on_space):
                        callback()
            return item
        if self._closed is not None:
            raise SinkClosed(self._closed)
        self._ready.clear()
        return None

    async def get(self) -> object:
        """Wait for the next response."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            await self._ready.wait()


@dataclass(eq=False, slots=True)
class Watcher:
    """One watch: a key or range, the next revision it needs, and where its events go.

    `end` is in the store's form: None watches the single `key`, b"" every key from `key` on,
    anything else the half-open range [key, end).
    """

    watch_id: int
    key: bytes
    end: bytes | None
    next_rev: int
    sink: WatchSink
    no_put: bool = False
    no_delete: bool = False
    prev_kv: bool = False
    synced: bool = False
    # Set when the hub dropped it for good: its start revision was compacted.
    compacted: bool = False
    # Set when the hub no longer serves it (cancelled, compacted, hub closed).
    removed: bool = False
    # Free for the stream's use (progress notification bookkeeping).
    attrs: dict[str, object] = field(default_factory=dict)

    def covers(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        return self.key <= key and (not self.end or key < self.end)


def _group(watcher: Watcher) -> tuple[bytes, bytes | None]:
    return (watcher.key, watcher.end)


class WatchHub:
    """Every watcher of one member, and the task that catches unsynced ones up."""

    def __init__(
        self,
        store: MVCCStore,
        *,
        catch_up_records: int = CATCH_UP_RECORDS,
        catch_up_bytes: int = CATCH_UP_BYTES,
    ) -> None:
        self.store = store
        self.catch_up_records = catch_up_records
        self.catch_up_bytes = catch_up_bytes
        # Synced watchers grouped by what they watch: single keys by key (a dict lookup per
        # event), ranges by (key, end); a thousand watchers of one prefix are one group.
        self._keys: dict[bytes, set[Watcher]] = {}
        self._ranges: dict[tuple[bytes, bytes | None], set[Watcher]] = {}
        self._unsynced: dict[Watcher, None] = {}  # insertion-ordered set
        # The last revision handed to synced watchers: they have everything up to it.
        self._notified_rev = store.current_rev
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed: EtcdError | None = None  # the error streams end with once closed
        self.events_sent = 0  # events handed to watch streams (etcd_debugging_mvcc_events_total)
        self.streams = 0  # open Watch streams, kept by the Watch service

    # ---- watchers ----------------------------------------------------------------------

    def watch(
        self,
        watch_id: int,
        key: bytes,
        end: bytes | None,
        start_rev: int,
        sink: WatchSink,
        *,
        no_put: bool = False,
        no_delete: bool = False,
        prev_kv: bool = False,
    ) -> Watcher:
        """Add a watcher; events from `start_rev` on (0: from the next revision)."""
        current = self.store.current_rev
        next_rev = current + 1 if start_rev <= 0 else start_rev
        watcher = Watcher(watch_id, key, end, next_rev, sink, no_put, no_delete, prev_kv)
        if self._closed is not None:  # the member stopped: the stream ends
            watcher.removed = True
            sink.close(self._closed)
        elif next_rev > current:
            self._add_synced(watcher)
        else:
            self._add_unsynced(watcher)
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        """Stop delivering to `watcher` (idempotent)."""
        if watcher.synced:
            self._remove_synced(watcher)
        self._unsynced.pop(watcher, None)
        watcher.removed = True

    def is_synced(self, watcher: Watcher) -> bool:
        return watcher.synced and not watcher.removed

    @property
    def revision(self) -> int:
        """The store's current revision: what a progress notification reports."""
        return self.store.current_rev

    def counts(self) -> tuple[int, int]:
        """(synced, unsynced) watchers, for tests and metrics."""
        synced = sum(len(s) for s in self._keys.values()) + sum(
            len(s) for s in self._ranges.values()
        )
        return synced, len(self._unsynced)

    def _add_synced(self, watcher: Watcher) -> None:
        watcher.synced = True
        if watcher.end is None:
            self._keys.setdefault(watcher.key, set()).add(watcher)
        else:
            self._ranges.setdefault(_group(watcher), set()).add(watcher)

    def _remove_synced(self, watcher: Watcher) -> None:
        watcher.synced = False
        table: dict = self._keys if watcher.end is None else self._ranges  # type: ignore[type-arg]
        group_key = watcher.key if watcher.end is None else _group(watcher)
        group = table.get(group_key)
        if group is not None:
            group.discard(watcher)
            if not group:
                del table[group_key]

    def _add_unsynced(self, watcher: Watcher) -> None:
        watcher.synced = False
        self._unsynced[watcher] = None
        if self._wake.set not in watcher.sink.on_space:
            watcher.sink.on_space.append(self._wake.set)
        self._start_catch_up()

    # ---- live revisions ----------------------------------------------------------------

    def notify(self, changes: Iterable[TxnChanges | None]) -> None:
        """Deliver freshly applied revisions (in revision order) to the synced watchers.

        Called right after the store flushed them, so a watcher that falls back to the
        store finds every one of them there.
        """
        for change in changes:
            if change is None or not change.events:
                continue
            self._notified_rev = change.rev
            if not self._keys and not self._ranges:
                continue
            per_group = self._match(change.events)
            for watchers, events in per_group:
                cache: dict[tuple[bool, bool, bool], list[Event]] = {}
                for watcher in list(watchers):
                    if change.rev < watcher.next_rev:
                        continue  # created with a future start revision
                    self._deliver_live(watcher, events, change.rev, cache)

    def _match(self, events: list[Event]) -> list[tuple[set[Watcher], list[Event]]]:
        """The synced groups that watch some of `events`, with the events each one sees."""
        found: dict[int, tuple[set[Watcher], list[Event]]] = {}
        for event in events:
            key = event.kv.key
            group = self._keys.get(key)
            if group:
                found.setdefault(id(group), (group, []))[1].append(event)
            for (low, high), group in self._ranges.items():
                if low <= key and (not high or key < high):
                    found.setdefault(id(group), (group, []))[1].append(event)
        return list(found.values())

    def _deliver_live(
        self,
        watcher: Watcher,
        events: list[Event],
        rev: int,
        cache: dict[tuple[bool, bool, bool], list[Event]],
    ) -> None:
        shape = (watcher.no_put, watcher.no_delete, watcher.prev_kv)
        shaped = cache.get(shape)
        if shaped is None:
            shaped = self._shape(watcher, events)
            cache[shape] = shaped
        if not shaped:
            watcher.next_rev = rev + 1
            return
        if watcher.sink.offer(WatchEvents(watcher, shaped, rev)):
            watcher.next_rev = rev + 1
            self.events_sent += len(shaped)
            return
        # The stream is full: the watcher re-reads this revision from the store later.
        self._remove_synced(watcher)
        self._add_unsynced(watcher)

    def _shape(self, watcher: Watcher, events: list[Event]) -> list[Event]:
        """Apply the watcher's filters, and attach previous values if it asked for them."""
        kept = [
            e
            for e in events
            if not (watcher.no_put and e.type == Event.PUT)
            and not (watcher.no_delete and e.type == Event.DELETE)
        ]
        if not watcher.prev_kv:
            return kept
        return [self._with_prev(e) for e in kept]

    def _with_prev(self, event: Event) -> Event:
        """A copy of `event` carrying the key's value just before the event's revision.

        Read from the store's history, as etcd does when it sends the event; if that
        revision is compacted by now, the event goes without it (etcd: the same).
        """
        copy = Event()
        copy.CopyFrom(event)
        rev = event.kv.mod_revision - 1
        if rev < 1:
            return copy
        try:
            found = self.store.range(event.kv.key, None, rev=rev, limit=1)
        except EtcdError:
            return copy
        if found.kvs:
            copy.prev_kv.CopyFrom(found.kvs[0])
        return copy

    # ---- catching up from the store ----------------------------------------------------

    def _start_catch_up(self) -> None:
        self._wake.set()
        if (self._task is None or self._task.done()) and self._closed is None:
            with contextlib.suppress(RuntimeError):  # no running loop: started by the next call
                loop = asyncio.get_running_loop()
                self._task = loop.create_task(self._catch_up_loop(), name="watch-catch-up")

    async def _catch_up_loop(self) -> None:
        while self._closed is None:
            if not self._unsynced:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._wake.clear()
            try:
                progressed = self.catch_up_step()
            except Exception:  # a bug must not end catch-up for every later watcher
                log.exception("watch catch-up step failed; retrying")
                progressed = False
            if progressed:
                await asyncio.sleep(0)
                continue
            # Every unsynced watcher waits for its stream to drain: look again when one
            # has room, or after a while anyway.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RETRY_INTERVAL_S)

    def catch_up_step(self) -> bool:
        """One bounded step of catch-up for every unsynced watcher; True if any progressed.

        Runs synchronously: no revision can be applied between the read and a watcher's
        move to synced.
        """
        store = self.store
        if store.closed or not self._unsynced:
            return False
        current = store.current_rev
        compacted = store.compact_rev
        progressed = False
        ready: list[Watcher] = []
        for watcher in list(self._unsynced):
            if watcher.sink.full_for(watcher):
                continue
            if watcher.next_rev < compacted:
                # etcd: the compaction revision, then the watch is cancelled (it may be
                # created again from a later revision).
                if watcher.sink.offer(WatchEvents(watcher, [], 0, compact_revision=compacted)):
                    del self._unsynced[watcher]
                    watcher.compacted = True
                    watcher.removed = True
                    progressed = True
                continue
            if watcher.next_rev > current:
                del self._unsynced[watcher]
                self._add_synced(watcher)
                progressed = True
                continue
            ready.append(watcher)
        if not ready:
            return progressed
        low = min(w.next_rev for w in ready)
        upto, events = self._read_history(low, current, compacted)
        # Watchers of the same range from the same revision with the same options see the
        # same events: a thousand watchers of one prefix cost one filtering, not a thousand.
        shapes: dict[tuple[bytes, bytes | None, int, bool, bool, bool], list[Event]] = {}
        for watcher in ready:
            shape = (
                watcher.key,
                watcher.end,
                watcher.next_rev,
                watcher.no_put,
                watcher.no_delete,
                watcher.prev_kv,
            )
            shaped = shapes.get(shape)  # type: ignore[assignment]
            if shaped is None:
                wanted = [
                    e
                    for e in events
                    if e.kv.mod_revision >= watcher.next_rev and watcher.covers(e.kv.key)
                ]
                shaped = self._shape(watcher, wanted) if wanted else []
                shapes[shape] = shaped
            if shaped and not watcher.sink.offer(WatchEvents(watcher, shaped, current)):
                continue  # full: this chunk is read again later
            self.events_sent += len(shaped)
            watcher.next_rev = max(watcher.next_rev, upto + 1)
            progressed = True
            if watcher.next_rev > current:
                del self._unsynced[watcher]
                self._add_synced(watcher)
        return progressed

    def _read_history(self, low: int, current: int, compacted: int) -> tuple[int, list[Event]]:
        """Events of revisions low.. (a bounded chunk of whole revisions), and the last one read.

        A delete at the compaction revision itself is dropped: compaction removes that
        tombstone from the history, so whether it is still there is a race with the deleter.
        """
        start = HISTORY + Revision(low).to_bytes()
        stop = HISTORY + Revision(current + 1).to_bytes()
        events: list[Event] = []
        last = low - 1
        count = size = 0
        for raw_key, record in self.store.backend.iterate(start, stop):
            rev = Revision.from_bytes(raw_key[len(HISTORY) :])
            full = count >= self.catch_up_records or size >= self.catch_up_bytes
            if full and rev.main != last:
                return last, events
            count += 1
            size += len(record)
            last = rev.main
            kv = KeyValue.FromString(record[1:])
            if record[:1] == RECORD_TOMBSTONE:
                if rev.main <= compacted:
                    continue
                events.append(Event(type=Event.DELETE, kv=kv))
            else:
                events.append(Event(type=Event.PUT, kv=kv))
        return current, events

    # ---- member life cycle -------------------------------------------------------------

    def swap(self, store: MVCCStore) -> None:
        """The member replaced its store (an image from the leader): re-read from the new one.

        Every watcher falls back to unsynced at the first revision it has not received; the
        new store holds those revisions (or has compacted them: then the watch is cancelled
        with the compaction revision).
        """
        for watcher in self._all_synced():
            watcher.next_rev = max(watcher.next_rev, self._notified_rev + 1)
            self._remove_synced(watcher)
            self._add_unsynced(watcher)
        self.store = store
        self._notified_rev = store.current_rev
        self._start_catch_up()

    def _all_synced(self) -> list[Watcher]:
        out: list[Watcher] = []
        for group in (*self._keys.values(), *self._ranges.values()):
            out.extend(group)
        return out

    def close(self, error: EtcdError) -> None:
        """The member stops: every stream ends with `error`, the catch-up task ends."""
        self._closed = error
        watchers = [*self._all_synced(), *self._unsynced]
        for watcher in watchers:
            watcher.removed = True
            watcher.sink.close(error)
        self._keys.clear()
        self._ranges.clear()
        self._unsynced.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._wake.set()
