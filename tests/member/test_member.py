"""A one-member cluster orders writes into the WAL, applies them, and comes back the same.

The member is the same RaftMember a cluster runs; alone, it is its own quorum.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cairn.errors import ErrRequestTooLarge, ErrStopped
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember, RaftMemberError
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest
from cairn.wal import WAL


def config(tmp_path: Path, **overrides: object) -> MemberConfig:
    settings: dict[str, object] = {
        "name": "m1",
        "data_dir": str(tmp_path / "data"),
        "initial_cluster": {"m1": ["http://127.0.0.1:2380"]},
    }
    settings.update(overrides)
    return MemberConfig(**settings)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_member(cfg: MemberConfig) -> RaftMember:
    """A member listening for peers on a free port (its ID comes from --initial-cluster)."""
    return RaftMember(cfg, ClusterSettings(listen_peer_urls=[f"http://127.0.0.1:{free_port()}"]))


async def started(cfg: MemberConfig) -> RaftMember:
    """Open and start a member, and wait until it leads (it campaigns at once, alone)."""
    member = new_member(cfg)
    member.open()
    await member.start()
    for _ in range(500):
        if member.leader == member.identity.member_id:
            return member
        await asyncio.sleep(0.01)
    raise AssertionError("a lone member did not become its own leader within 5 s")


def put(key: bytes, value: bytes = b"v") -> InternalRequest:
    return InternalRequest(put=pb.PutRequest(key=key, value=value))


async def run_puts(member: RaftMember, count: int, prefix: bytes = b"k") -> list[int]:
    applied = await asyncio.gather(
        *(member.propose(put(prefix + b"%05d" % i)) for i in range(count))
    )
    return [a.response.header.revision for a in applied]  # type: ignore[attr-defined]


def with_member(cfg: MemberConfig, body: Callable[[RaftMember], Awaitable[object]]) -> object:
    async def main() -> object:
        member = await started(cfg)
        try:
            return await body(member)
        finally:
            await member.stop()

    return asyncio.run(main())


def test_concurrent_puts_get_consecutive_revisions(tmp_path: Path) -> None:
    revisions = with_member(config(tmp_path), lambda m: run_puts(m, 200))
    assert sorted(revisions) == list(range(2, 202))  # type: ignore[arg-type]


def test_restart_keeps_every_applied_write(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with_member(cfg, lambda m: run_puts(m, 50))

    async def read(member: RaftMember) -> tuple[int, int]:
        response = await member.range(
            pb.RangeRequest(key=b"\x00", range_end=b"\x00", count_only=True)
        )
        return response.count, response.header.revision

    assert with_member(cfg, read) == (50, 51)


def test_state_is_rebuilt_from_the_wal_alone(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with_member(cfg, lambda m: run_puts(m, 30))
    for item in Path(cfg.db_dir).iterdir():
        item.unlink()
    Path(cfg.db_dir).rmdir()

    async def read(member: RaftMember) -> tuple[int, int]:
        response = await member.range(pb.RangeRequest(key=b"k", range_end=b"l"))
        return response.count, response.header.revision

    assert with_member(cfg, read) == (30, 31)


def test_term_grows_by_one_per_start_like_a_single_etcd_member(tmp_path: Path) -> None:
    cfg = config(tmp_path)

    async def term(member: RaftMember) -> int:
        return member.term

    # A new cluster's first leader has term 1 (etcd: 2, its bootstrap entries are at term 1).
    assert [with_member(cfg, term) for _ in range(3)] == [1, 2, 3]


def test_snapshot_releases_old_wal_segments_and_restart_still_works(tmp_path: Path) -> None:
    cfg = config(tmp_path, snapshot_count=100, wal_segment_bytes=16 * 1024)
    with_member(cfg, lambda m: run_puts(m, 600))
    segments = WAL.open(cfg.wal_dir)[0]
    try:
        first_segment = segments.segments[0].name
    finally:
        segments.close()
    assert not first_segment.startswith("0000000000000000-"), "the first segment was released"

    async def read(member: RaftMember) -> int:
        return (
            await member.range(pb.RangeRequest(key=b"k", range_end=b"l", count_only=True))
        ).count

    assert with_member(cfg, read) == 600


def test_oversized_request_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    async def body(member: RaftMember) -> tuple[int, bool]:
        before = member.node.status().last_index
        with pytest.raises(ErrRequestTooLarge):
            await member.propose(put(b"big", b"x" * 2048))
        return member.store.current_rev, member.node.status().last_index == before

    assert with_member(config(tmp_path, max_request_bytes=1024), body) == (1, True)


def test_proposals_after_stop_fail_with_server_stopped(tmp_path: Path) -> None:
    async def main() -> None:
        member = await started(config(tmp_path))
        await member.stop()
        with pytest.raises(ErrStopped):
            await member.propose(put(b"late"))

    asyncio.run(main())


def test_data_dir_of_another_member_is_refused(tmp_path: Path) -> None:
    with_member(config(tmp_path), lambda m: run_puts(m, 1))
    other = new_member(
        config(tmp_path, name="m2", initial_cluster={"m2": ["http://127.0.0.1:2380"]})
    )
    with pytest.raises(RaftMemberError, match="belongs to member 'm1'"):
        other.open()
    other.backend.close()


def test_member_continues_after_the_wal_lost_a_tail_the_state_had_applied(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    with_member(cfg, lambda m: run_puts(m, 5))
    segment = sorted(Path(cfg.wal_dir).glob("*.wal"))[-1]
    raw = segment.read_bytes()
    # Cut inside the last entry record: its entry is already applied to LevelDB.
    marker = b"k00004"
    segment.write_bytes(raw[: raw.rindex(marker)])

    async def write_more(member: RaftMember) -> list[int]:
        return await run_puts(member, 3, prefix=b"after")

    assert sorted(with_member(cfg, write_more)) == [7, 8, 9]  # type: ignore[arg-type]


def test_a_failing_wal_fails_the_waiting_requests_instead_of_hanging(tmp_path: Path) -> None:
    async def body(member: RaftMember) -> None:
        member._wal.close()  # every later save raises WALError
        with pytest.raises(ErrStopped):
            await asyncio.wait_for(member.propose(put(b"k")), timeout=5)
        assert member.failure is not None

    async def main() -> None:
        member = await started(config(tmp_path))
        await body(member)
        await member.stop()

    asyncio.run(main())


def test_concurrent_linearizable_reads_share_one_read_index_round(tmp_path: Path) -> None:
    async def body(member: RaftMember) -> int:
        asked: list[bytes] = []
        read_index = member.node.read_index
        member.node.read_index = lambda ctx: (asked.append(ctx), read_index(ctx))[1]  # type: ignore[method-assign]
        await asyncio.gather(*(member.linearizable_barrier() for _ in range(100)))
        return len(asked)

    assert with_member(config(tmp_path), body) == 1


def test_a_read_arriving_during_a_round_waits_for_the_next_round(tmp_path: Path) -> None:
    async def body(member: RaftMember) -> list[str]:
        events: list[str] = []
        read_index = member.node.read_index

        def recording(ctx: bytes) -> None:
            events.append("round")
            read_index(ctx)

        member.node.read_index = recording  # type: ignore[method-assign]

        async def read(name: str) -> None:
            await member.linearizable_barrier()
            events.append(name)

        first = asyncio.ensure_future(read("first"))
        while not events:  # the first round is out
            await asyncio.sleep(0)
        await asyncio.gather(first, read("second"))
        return events

    events = with_member(config(tmp_path), body)
    second_round = [i for i, e in enumerate(events) if e == "round"][1]  # type: ignore[arg-type]
    assert events.count("round") == 2 and events.index("second") > second_round  # type: ignore[attr-defined]


def test_a_first_start_that_died_before_saving_its_configuration_bootstraps_again(
    tmp_path: Path,
) -> None:
    """A first start can die between creating the WAL and saving the initial configuration
    (a port that cannot be bound, a kill): the restart must still know its voters."""
    cfg = config(tmp_path)
    crashed = new_member(cfg)
    crashed.open()  # creates the WAL with the member's identity, saves no Ready
    crashed_id = crashed.identity.member_id
    crashed._wal.close()
    crashed.backend.close()

    async def leader_and_id(member: RaftMember) -> tuple[int, int]:
        await member.propose(put(b"k"))
        return member.leader, member.identity.member_id

    assert with_member(cfg, leader_and_id) == (crashed_id, crashed_id)
