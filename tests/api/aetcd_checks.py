"""Checks run by test_aetcd_client.py in a process of their own (`python -m
tests.api.aetcd_checks PORT CHECK`): aetcd ships generated protos with etcd's package names,
which cannot share a process with cairn's (one protobuf descriptor pool), so this module must
never import cairn."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import aetcd
import aetcd.exceptions
import aetcd.rtypes

Body = Callable[[aetcd.Client], Awaitable[None]]


def with_client(port: int, body: Body) -> None:
    async def main() -> None:
        async with aetcd.Client(host="127.0.0.1", port=port) as client:
            await asyncio.wait_for(body(client), 20)

    asyncio.run(main())


async def take(watch: aetcd.rtypes.Watch, n: int) -> list[aetcd.rtypes.Event]:
    events = []
    async for event in watch:
        events.append(event)
        if len(events) == n:
            break
    return events


def put_get_and_a_transaction(client_port: int) -> None:
    async def body(client: aetcd.Client) -> None:
        await client.put(b"tx/a", b"1")
        got = await client.get(b"tx/a")
        assert got is not None and got.value == b"1"
        ok, _ = await client.transaction(
            compare=[client.transactions.value(b"tx/a") == b"1"],
            success=[client.transactions.put(b"tx/b", b"2")],
            failure=[],
        )
        assert ok
        got_b = await client.get(b"tx/b")
        assert got_b is not None and got_b.value == b"2"

    with_client(client_port, body)


def watch_a_key_from_a_past_revision_then_live(client_port: int) -> None:
    async def body(client: aetcd.Client) -> None:
        first = await client.put(b"w/key", b"old")
        await client.put(b"w/key", b"new")
        watch = await client.watch(b"w/key", start_revision=first.header.revision, prev_kv=True)
        reading = asyncio.create_task(take(watch, 3))
        await asyncio.sleep(0.2)
        await client.delete(b"w/key")
        events = await reading
        await watch.cancel()
        assert [(e.kind, e.kv.value) for e in events] == [
            ("PUT", b"old"),
            ("PUT", b"new"),
            ("DELETE", b""),
        ]
        # aetcd turns an absent prev_kv into an empty KeyValue (against etcd too).
        prev = [(e.prev_kv.key, e.prev_kv.value) for e in events if e.prev_kv is not None]
        assert prev == [(b"", b""), (b"w/key", b"old"), (b"w/key", b"new")]

    with_client(client_port, body)


def watch_prefix_filtered_to_deletes(client_port: int) -> None:
    async def body(client: aetcd.Client) -> None:
        watch = await client.watch_prefix(b"p/", kind=aetcd.rtypes.EventKind.DELETE)
        reading = asyncio.create_task(take(watch, 2))
        await asyncio.sleep(0.2)
        await client.put(b"p/1", b"x")
        await client.put(b"p/2", b"y")
        await client.put(b"q", b"outside")
        await client.delete(b"p/1")
        await client.delete(b"p/2")
        events = await reading
        await watch.cancel()
        assert [(e.kind, e.kv.key) for e in events] == [("DELETE", b"p/1"), ("DELETE", b"p/2")]

    with_client(client_port, body)


def watch_from_a_compacted_revision_raises(client_port: int) -> None:
    async def body(client: aetcd.Client) -> None:
        put = await client.put(b"c/k", b"1")
        later = await client.put(b"c/k", b"2")
        await client.compact(later.header.revision)
        watch = await client.watch(b"c/k", start_revision=put.header.revision)
        try:
            await take(watch, 1)
        except aetcd.exceptions.RevisionCompactedError as compacted:
            assert compacted.compacted_revision == later.header.revision
        else:
            raise AssertionError("no RevisionCompactedError")

    with_client(client_port, body)


def lock_excludes_a_second_holder_until_released(client_port: int) -> None:
    async def body(client: aetcd.Client) -> None:
        first, second = client.lock(b"locks/L", ttl=30), client.lock(b"locks/L", ttl=30)
        assert await first.acquire(timeout=5)
        assert await first.is_acquired()
        assert not await second.acquire(timeout=1)  # waits on a watch, then gives up
        waiting = asyncio.create_task(second.acquire(timeout=10))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert await first.release()
        assert await waiting  # woken by the delete event
        assert await second.is_acquired() and not await first.is_acquired()
        await second.release()

    with_client(client_port, body)


def lease_grant_attach_refresh_info_and_revoke(client_port: int) -> None:
    async def body(client: aetcd.Client) -> None:
        lease = await client.lease(30)
        await client.put(b"leased/a", b"1", lease=lease)
        await client.put(b"leased/b", b"2", lease=lease.id)
        assert await lease.granted_ttl() == 30
        assert 0 < await lease.remaining_ttl() <= 30
        assert sorted(await lease.keys()) == [b"leased/a", b"leased/b"]
        await lease.refresh()
        got = await client.get(b"leased/a")
        assert got is not None and got.lease == lease.id
        await lease.revoke()
        assert await client.get(b"leased/a") is None
        assert await client.get(b"leased/b") is None

    with_client(client_port, body)


CHECKS = {
    f.__name__: f
    for f in (
        lease_grant_attach_refresh_info_and_revoke,
        put_get_and_a_transaction,
        watch_a_key_from_a_past_revision_then_live,
        watch_prefix_filtered_to_deletes,
        watch_from_a_compacted_revision_raises,
        lock_excludes_a_second_holder_until_released,
    )
}

if __name__ == "__main__":
    CHECKS[sys.argv[2]](int(sys.argv[1]))
