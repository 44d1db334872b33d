"""The watch hub on a real store: ordering, completeness, catch-up, slow consumers, compaction,
store swap.

Writes go through the Applier exactly as a member applies them (flush, then notify); the
catch-up task is driven step by step where a test needs determinism, and runs for real on an
event loop where a test needs writes racing with it.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.mvcc.harness import KV, delete_op, prefix_end, put_op

from cairn.errors import ErrStopped
from cairn.member.applier import Applied
from cairn.mvcc.watch import SinkClosed, Watcher, WatchEvents, WatchHub, WatchSink
from cairn.proto.kv_pb2 import Event

PUT, DELETE = Event.PUT, Event.DELETE


class WatchedKV(KV):
    """A store whose every applied request is handed to a hub after the flush (the member's
    order)."""

    def __init__(self, path: Path, **hub_options: int) -> None:
        super().__init__(path)
        self.hub = WatchHub(self.store, **hub_options)

    def _apply(self, apply: Callable[[], Applied]) -> Applied:
        applied = super()._apply(apply)
        self.hub.notify([applied.changes])
        return applied

    def watch(
        self, key: bytes, end: bytes | None = None, start: int = 0, capacity: int = 1000, **kw: bool
    ) -> Watcher:
        return self.hub.watch(1, key, end, start, WatchSink(capacity), **kw)

    def history(self, key: bytes, end: bytes | None, first: int) -> list[tuple[int, int, bytes]]:
        """(revision, type, key) of every change in range from `first`, read by Range at each
        revision: the reference the hub's events must equal."""
        out: list[tuple[int, int, bytes]] = []
        range_end = b"" if end is None else (b"\x00" if end == b"" else end)
        for rev in range(max(first, 2), self.revision + 1):
            now = {kv.key: kv for kv in self.get(key, range_end, revision=rev).kvs}
            before = {kv.key: kv for kv in self.get(key, range_end, revision=rev - 1).kvs}
            for k in sorted(set(now) | set(before)):
                if k in now and now[k].mod_revision == rev:
                    out.append((rev, PUT, k))
                elif k in before and k not in now:
                    out.append((rev, DELETE, k))
        return out


def drain(sink: WatchSink) -> list[object]:
    items = []
    while (item := sink.get_nowait()) is not None:
        items.append(item)
    return items


def flat(items: list[object]) -> list[tuple[int, int, bytes]]:
    out = []
    for item in items:
        assert isinstance(item, WatchEvents)
        out.extend((e.kv.mod_revision, e.type, e.kv.key) for e in item.events)
    return out


def catch_up(kv: WatchedKV) -> None:
    while kv.hub.catch_up_step():
        pass


@pytest.fixture
def wkv(tmp_path: Path) -> Iterator[WatchedKV]:
    store = WatchedKV(tmp_path / "db")
    yield store
    store.close()


def test_live_events_arrive_in_revision_order_with_a_txn_in_one_response(wkv: WatchedKV) -> None:
    w = wkv.watch(b"a/", prefix_end(b"a/"))
    wkv.put(b"a/1", b"x")  # rev 2
    wkv.txn(success=[put_op(b"a/2", b"y"), put_op(b"a/3", b"z"), put_op(b"b", b"-")])  # rev 3
    wkv.delete(b"a/1")  # rev 4
    items = drain(w.sink)
    assert [(i.revision, [e.kv.key for e in i.events]) for i in items] == [  # type: ignore[attr-defined]
        (2, [b"a/1"]),
        (3, [b"a/2", b"a/3"]),
        (4, [b"a/1"]),
    ]
    assert flat(items) == wkv.history(b"a/", prefix_end(b"a/"), 2)


def test_a_single_key_watcher_sees_only_that_key(wkv: WatchedKV) -> None:
    w = wkv.watch(b"k")
    wkv.put(b"k0", b"1")
    wkv.put(b"k", b"2")
    wkv.put(b"kk", b"3")
    assert flat(drain(w.sink)) == [(3, PUT, b"k")]


def test_an_empty_range_end_watches_every_key_from_the_start_key(wkv: WatchedKV) -> None:
    w = wkv.watch(b"b", b"")
    wkv.put(b"a", b"1")
    wkv.put(b"b", b"2")
    wkv.put(b"zzz", b"3")
    assert flat(drain(w.sink)) == [(3, PUT, b"b"), (4, PUT, b"zzz")]


def test_filters_drop_puts_or_deletes_and_skip_empty_responses(wkv: WatchedKV) -> None:
    no_put = wkv.watch(b"k", no_put=True)
    no_delete = wkv.watch(b"k", no_delete=True)
    wkv.put(b"k", b"1")
    wkv.delete(b"k")
    assert flat(drain(no_put.sink)) == [(3, DELETE, b"k")]
    assert flat(drain(no_delete.sink)) == [(2, PUT, b"k")]


def test_prev_kv_carries_the_value_before_the_event(wkv: WatchedKV) -> None:
    w = wkv.watch(b"k", prev_kv=True)
    wkv.put(b"k", b"one")
    wkv.put(b"k", b"two")
    wkv.delete(b"k")
    events = [e for item in drain(w.sink) for e in item.events]  # type: ignore[attr-defined]
    assert [e.HasField("prev_kv") for e in events] == [False, True, True]
    assert [e.prev_kv.value for e in events[1:]] == [b"one", b"two"]
    assert events[2].prev_kv.mod_revision == 3


def test_a_future_start_revision_skips_earlier_revisions(wkv: WatchedKV) -> None:
    w = wkv.watch(b"k", start=4)
    for value in (b"1", b"2", b"3", b"4"):
        wkv.put(b"k", value)  # revs 2..5
    assert flat(drain(w.sink)) == [(4, PUT, b"k"), (5, PUT, b"k")]


def test_a_past_start_revision_replays_history_then_goes_live(wkv: WatchedKV) -> None:
    for i in range(10):
        wkv.put(b"p/%d" % (i % 3), b"v%d" % i)  # revs 2..11
    wkv.delete(b"p/1")  # rev 12
    w = wkv.watch(b"p/", prefix_end(b"p/"), start=5)
    assert not w.synced
    catch_up(wkv)
    assert w.synced
    wkv.put(b"p/9", b"live")  # rev 13
    assert flat(drain(w.sink)) == wkv.history(b"p/", prefix_end(b"p/"), 5)


def test_watchers_caught_up_together_each_get_history_from_their_own_start(
    wkv: WatchedKV,
) -> None:
    for i in range(8):
        wkv.put(b"k", b"%d" % i)  # revs 2..9
    early = wkv.watch(b"k", start=3)
    late = wkv.watch(b"k", start=7)
    catch_up(wkv)  # one read from revision 3 serves both
    assert [r for r, _, _ in flat(drain(early.sink))] == [3, 4, 5, 6, 7, 8, 9]
    assert [r for r, _, _ in flat(drain(late.sink))] == [7, 8, 9]


def test_catch_up_reads_bounded_chunks_that_end_at_a_revision_boundary(tmp_path: Path) -> None:
    kv = WatchedKV(tmp_path / "db", catch_up_records=3)
    try:
        for i in range(6):  # revs 2..7, two events each
            kv.txn(success=[put_op(b"t/a", b"%d" % i), put_op(b"t/b", b"%d" % i)])
        w = kv.watch(b"t/", prefix_end(b"t/"), start=2)
        steps = 0
        while kv.hub.catch_up_step():
            steps += 1
        items = drain(w.sink)
        assert steps >= 3
        for item in items:
            revs = [e.kv.mod_revision for e in item.events]  # type: ignore[attr-defined]
            assert revs.count(revs[0]) == 2 and revs.count(revs[-1]) == 2
        assert flat(items) == kv.history(b"t/", prefix_end(b"t/"), 2)
    finally:
        kv.close()


def test_catch_up_chunks_are_bounded_in_bytes_too(tmp_path: Path) -> None:
    kv = WatchedKV(tmp_path / "db", catch_up_bytes=25_000)
    try:
        for i in range(10):
            kv.put(b"big", b"%d" % i * 10_000)  # revs 2..11, 10-20 kB each
        w = kv.watch(b"big", start=2)
        catch_up(kv)
        items = drain(w.sink)
        assert [len(i.events) for i in items] == [3, 3, 3, 1]  # type: ignore[attr-defined]
        assert [r for r, _, _ in flat(items)] == list(range(2, 12))
    finally:
        kv.close()


def test_catch_up_racing_with_writes_hands_over_without_gap_or_duplicate(tmp_path: Path) -> None:
    kv = WatchedKV(tmp_path / "db", catch_up_records=5)
    rng = random.Random(7)

    def write() -> None:
        key = b"r/%d" % rng.randrange(8)
        if rng.random() < 0.2:
            kv.delete(key)
        elif rng.random() < 0.2:
            kv.txn(success=[put_op(key, b"t"), delete_op(b"r/x" + key)])
        else:
            kv.put(key, b"%d" % rng.randrange(1000))

    async def scenario() -> list[object]:
        for _ in range(300):
            write()
        w = kv.watch(b"r/", prefix_end(b"r/"), start=2)
        received: list[object] = []

        async def reader() -> None:
            while True:
                received.append(await w.sink.get())

        reading = asyncio.create_task(reader())
        for _ in range(300):  # writes interleaved with the catch-up task's steps
            write()
            await asyncio.sleep(0)
        while not w.synced:
            await asyncio.sleep(0.01)
        for _ in range(20):
            write()
        await asyncio.sleep(0.05)
        reading.cancel()
        kv.hub.close(ErrStopped())
        return received

    try:
        received = asyncio.run(scenario())
        assert flat(received) == kv.history(b"r/", prefix_end(b"r/"), 2)
    finally:
        kv.close()


def test_a_slow_consumer_does_not_block_writers_and_later_receives_everything(
    wkv: WatchedKV,
) -> None:
    async def scenario() -> tuple[list[object], list[object]]:
        slow = wkv.watch(b"s/", prefix_end(b"s/"), capacity=2)
        fast = wkv.watch(b"s/", prefix_end(b"s/"))
        for i in range(100):  # nobody reads `slow`: every write still completes at once
            wkv.put(b"s/%d" % (i % 5), b"%d" % i)
        assert not slow.synced and fast.synced
        assert len(slow.sink) == 2
        received = []
        while len(flat(received)) < 100:
            received.append(await asyncio.wait_for(slow.sink.get(), 5))
        await asyncio.sleep(0.05)
        assert slow.synced
        wkv.put(b"s/last", b"x")
        received += drain(slow.sink)
        return received, drain(fast.sink)

    slow_items, fast_items = asyncio.run(scenario())
    expected = wkv.history(b"s/", prefix_end(b"s/"), 2)
    assert flat(slow_items) == expected
    assert flat(fast_items)[:100] == expected[:100]


def test_a_compacted_start_revision_gets_the_compaction_revision_and_is_cancelled(
    wkv: WatchedKV,
) -> None:
    for i in range(6):
        wkv.put(b"c", b"%d" % i)  # revs 2..7
    wkv.compact(5)
    w = wkv.watch(b"c", start=3)
    catch_up(wkv)
    (item,) = drain(w.sink)
    assert isinstance(item, WatchEvents)
    assert (item.compact_revision, item.revision, item.events) == (5, 0, [])
    assert w.compacted and w.removed
    wkv.put(b"c", b"after")
    assert drain(w.sink) == []


def test_a_start_revision_equal_to_the_compaction_revision_replays_from_it(wkv: WatchedKV) -> None:
    for i in range(6):
        wkv.put(b"c", b"%d" % i)  # revs 2..7
    wkv.compact(5)
    w = wkv.watch(b"c", start=5)
    catch_up(wkv)
    assert flat(drain(w.sink)) == [(5, PUT, b"c"), (6, PUT, b"c"), (7, PUT, b"c")]


def test_a_slow_watcher_whose_missed_history_is_compacted_is_cancelled(wkv: WatchedKV) -> None:
    w = wkv.watch(b"c", capacity=1)
    for i in range(5):
        wkv.put(b"c", b"%d" % i)  # revs 2..6; only rev 2 fits, the watcher falls behind at 3
    wkv.compact(5)
    catch_up(wkv)
    assert flat([w.sink.get_nowait()]) == [(2, PUT, b"c")]  # type: ignore[list-item]
    catch_up(wkv)
    (item,) = drain(w.sink)
    assert item.compact_revision == 5  # type: ignore[attr-defined]


def test_a_cancelled_watcher_gets_nothing_more(wkv: WatchedKV) -> None:
    w = wkv.watch(b"k")
    wkv.put(b"k", b"1")
    wkv.hub.cancel(w)
    wkv.put(b"k", b"2")
    assert flat(drain(w.sink)) == [(2, PUT, b"k")]
    assert wkv.hub.counts() == (0, 0)


def test_a_store_swap_resyncs_every_watcher_from_the_new_store(tmp_path: Path) -> None:
    kv = WatchedKV(tmp_path / "db")
    try:
        w = kv.watch(b"w/", prefix_end(b"w/"))
        kv.put(b"w/a", b"1")  # rev 2, delivered live
        kv.flush()
        # The "image": the same history plus revisions this member never applied itself.
        shutil.copytree(tmp_path / "db", tmp_path / "image")
        image = KV(tmp_path / "image")
        image.put(b"w/b", b"2")  # rev 3
        image.put(b"x", b"-")  # rev 4
        image.delete(b"w/a")  # rev 5
        image.flush()
        kv.hub.swap(image.store)
        assert not w.synced
        catch_up(kv)
        assert w.synced
        assert flat(drain(w.sink)) == [(2, PUT, b"w/a"), (3, PUT, b"w/b"), (5, DELETE, b"w/a")]
        image.close()
    finally:
        kv.close()


def test_a_store_swap_past_a_compaction_cancels_the_watchers_it_skipped(tmp_path: Path) -> None:
    kv = WatchedKV(tmp_path / "db")
    try:
        w = kv.watch(b"k")
        kv.put(b"k", b"1")  # rev 2
        kv.flush()
        shutil.copytree(tmp_path / "db", tmp_path / "image")
        image = KV(tmp_path / "image")
        for i in range(4):
            image.put(b"k", b"%d" % i)  # revs 3..6
        image.compact(5)
        kv.hub.swap(image.store)
        catch_up(kv)
        items = drain(w.sink)
        assert flat(items[:1]) == [(2, PUT, b"k")]
        assert items[1].compact_revision == 5  # type: ignore[attr-defined]
        image.close()
    finally:
        kv.close()


def test_closing_the_hub_ends_every_stream_with_the_error(wkv: WatchedKV) -> None:
    w = wkv.watch(b"k")
    wkv.put(b"k", b"1")
    wkv.hub.close(ErrStopped())
    assert flat([w.sink.get_nowait()]) == [(2, PUT, b"k")]  # type: ignore[list-item]
    with pytest.raises(SinkClosed) as closed:
        w.sink.get_nowait()
    assert isinstance(closed.value.error, ErrStopped)
