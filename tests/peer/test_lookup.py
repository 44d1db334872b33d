"""The ``Members`` call: a joining member asks peers for the cluster ID and the member table.

Real transports serve it on loopback; the client is the one a joining member uses.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import grpc
import pytest
from tests.peer.harness import CLUSTER_ID, FAST, LOOPBACK_ANY_PORT, free_port

from cairn.peer import (
    ClusterInfo,
    ClusterInfoUnavailable,
    MemberInfo,
    Transport,
    fetch_cluster_info,
)
from cairn.proto import peer_pb2, peer_pb2_grpc

TABLE = ClusterInfo(
    CLUSTER_ID,
    (
        MemberInfo(0x1, "m1", ("http://10.0.0.1:2380",)),
        MemberInfo(0x2, "m2", ("http://10.0.0.2:2380", "http://10.0.0.2:2381")),
        MemberInfo(0x3, "", ("http://10.0.0.3:2380",), is_learner=True),
    ),
)


async def serving(info: ClusterInfo | None) -> Transport:
    """A started transport of member 1 that answers with ``info`` (or has no table at all)."""
    transport = Transport(
        0x1,
        CLUSTER_ID,
        lambda origin, payload: None,
        options=FAST,
        cluster_info=None if info is None else (lambda: info),
    )
    await transport.start([LOOPBACK_ANY_PORT])
    return transport


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_a_caller_without_ids_gets_the_cluster_id_and_every_member() -> None:
    async def main() -> ClusterInfo:
        transport = await serving(TABLE)
        try:
            return await fetch_cluster_info(transport.listen_urls)
        finally:
            await transport.stop()

    assert asyncio.run(main()) == TABLE


def test_the_table_is_read_from_the_member_at_each_call() -> None:
    async def main() -> tuple[ClusterInfo, ClusterInfo]:
        current = [TABLE]
        transport = Transport(
            0x1, CLUSTER_ID, lambda o, p: None, options=FAST, cluster_info=lambda: current[0]
        )
        await transport.start([LOOPBACK_ANY_PORT])
        try:
            first = await fetch_cluster_info(transport.listen_urls)
            current[0] = ClusterInfo(CLUSTER_ID, TABLE.members[:2])
            return first, await fetch_cluster_info(transport.listen_urls)
        finally:
            await transport.stop()

    first, second = asyncio.run(main())
    assert len(first.members) == 3 and len(second.members) == 2


def test_a_url_that_does_not_answer_is_skipped_for_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cairn.peer")
    down = dead_url()

    async def main() -> ClusterInfo:
        transport = await serving(TABLE)
        try:
            return await fetch_cluster_info([down, *transport.listen_urls])
        finally:
            await transport.stop()

    assert asyncio.run(main()) == TABLE
    assert any(f"could not get cluster response from {down}" in r.message for r in caplog.records)


def test_no_answer_from_any_url_raises_etcds_error_with_a_reason_per_url() -> None:
    urls = [dead_url(), dead_url()]
    with pytest.raises(ClusterInfoUnavailable) as raised:
        asyncio.run(fetch_cluster_info(urls, timeout=0.5))
    assert str(raised.value) == "could not retrieve cluster information from the given URLs"
    assert sorted(raised.value.failures) == sorted(urls)
    assert all("UNAVAILABLE" in reason for reason in raised.value.failures.values())


def test_a_peer_without_a_table_is_skipped_as_unimplemented() -> None:
    async def main() -> None:
        transport = await serving(None)
        try:
            await fetch_cluster_info(transport.listen_urls)
        finally:
            await transport.stop()

    with pytest.raises(ClusterInfoUnavailable) as raised:
        asyncio.run(main())
    assert "UNIMPLEMENTED" in next(iter(raised.value.failures.values()))


def test_a_peer_with_an_empty_table_is_skipped() -> None:
    async def main() -> ClusterInfo:
        empty = await serving(ClusterInfo(CLUSTER_ID, ()))
        full = await serving(TABLE)
        try:
            return await fetch_cluster_info([*empty.listen_urls, *full.listen_urls])
        finally:
            await empty.stop()
            await full.stop()

    assert asyncio.run(main()) == TABLE


def test_a_peer_that_accepts_but_never_answers_costs_only_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever speaks HTTP/2
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ClusterInfoUnavailable) as raised:
            asyncio.run(fetch_cluster_info([url], timeout=0.3))
        elapsed = time.monotonic() - started
    assert "DEADLINE_EXCEEDED" in raised.value.failures[url]
    assert elapsed < 2.0


def test_a_caller_speaking_another_protocol_version_is_refused() -> None:
    async def main() -> grpc.StatusCode:
        transport = await serving(TABLE)
        try:
            target = transport.listen_urls[0].removeprefix("http://")
            async with grpc.aio.insecure_channel(target) as channel:
                stub = peer_pb2_grpc.PeerStub(channel)
                try:
                    await stub.Members(peer_pb2.MembersRequest(protocol_version=99), timeout=2)
                except grpc.aio.AioRpcError as error:
                    return error.code()
            raise AssertionError("a caller of another protocol version was answered")
        finally:
            await transport.stop()

    assert asyncio.run(main()) is grpc.StatusCode.FAILED_PRECONDITION
