"""The transport's small pure parts: URL parsing, the outbox, hello checks, log limiting."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cairn.peer import PeerURLError, parse_peer_url
from cairn.peer.handshake import PROTOCOL_VERSION, LocalIdentity, format_id
from cairn.peer.outbox import Outbox
from cairn.peer.ratelimit import RateLimitedLog
from cairn.proto import peer_pb2


def test_peer_url_gives_grpc_target_and_keeps_scheme() -> None:
    url = parse_peer_url("https://10.0.0.1:2380")
    assert (url.target, url.secure, str(url)) == ("10.0.0.1:2380", True, "https://10.0.0.1:2380")
    assert parse_peer_url("http://[::1]:2380/").target == "[::1]:2380"
    assert str(parse_peer_url("http://127.0.0.1:0").with_port(4242)) == "http://127.0.0.1:4242"


@pytest.mark.parametrize(
    "bad",
    ["127.0.0.1:2380", "unix:///tmp/s", "http://127.0.0.1", "http://h:99999", "http://h:1/x"],
)
def test_unusable_peer_urls_are_refused(bad: str) -> None:
    with pytest.raises(PeerURLError):
        parse_peer_url(bad)


def test_outbox_is_bounded_and_batches_by_bytes() -> None:
    outbox = Outbox(capacity=4)
    assert [outbox.offer(p) for p in (b"aaa", b"bb", b"c", b"dddd", b"full")] == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert outbox.take_batch(max_bytes=6) == [b"aaa", b"bb", b"c"]
    assert outbox.take_batch(max_bytes=1) == [b"dddd"], "an oversized payload still goes alone"
    assert outbox.take_batch(max_bytes=10) == []


def test_outbox_wake_before_wait_is_not_lost() -> None:
    async def main() -> None:
        outbox = Outbox(capacity=1)
        outbox.wake()
        await asyncio.wait_for(outbox.wait(), timeout=1)

    asyncio.run(main())


def test_hello_refusals_name_the_cause() -> None:
    me = LocalIdentity(member_id=0xA, cluster_id=0xC)
    good = LocalIdentity(member_id=0xB, cluster_id=0xC).hello_to(0xA)
    assert me.refusal(good) is None

    def variant(**changes: int) -> peer_pb2.PeerHello:
        hello = peer_pb2.PeerHello()
        hello.CopyFrom(good)
        for name, value in changes.items():
            setattr(hello, name, value)
        return hello

    assert "cluster ID mismatch" in str(me.refusal(variant(cluster_id=0xD)))
    assert "member ID mismatch" in str(me.refusal(variant(to_id=0xE)))
    assert "own ID" in str(me.refusal(variant(from_id=0xA)))
    assert "protocol version" in str(me.refusal(variant(protocol_version=PROTOCOL_VERSION + 1)))
    assert format_id(0x8E9E05C52164694D) == "8e9e05c52164694d"


def test_rate_limited_log_emits_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("cairn.test"), interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="cairn.test"):
        results = [limited.log("k", logging.WARNING, "down") for _ in range(3)]
        now[0] = 11
        results.append(limited.log("k", logging.WARNING, "down"))
        limited.reset("k")
        results.append(limited.log("k", logging.WARNING, "down"))
    assert results == [True, False, False, True, True]
    assert len(caplog.records) == 3
