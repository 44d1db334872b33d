"""A member's key file reloads and background re-encryption, in process (one real member)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from tests.observe.exposition import parse
from tests.sealing.keys import secret, write_key_file

from cairn.api.rpc_stats import RpcStats
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.observe.member_metrics import connect_member
from cairn.observe.registry import MetricsRegistry
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

pytestmark = pytest.mark.slow  # a real member, its WAL and LevelDB, a few seconds each

RECORDS = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def encrypted_member(base: Path, key_file: Path) -> RaftMember:
    url = f"http://127.0.0.1:{free_port()}"
    member = RaftMember(
        MemberConfig(
            name="m1",
            data_dir=str(base / "m1"),
            initial_cluster={"m1": [url]},
            encryption_key_file=str(key_file),
        ),
        ClusterSettings(listen_peer_urls=[url], heartbeat_interval_ms=20, election_timeout_ms=200),
    )
    member.open()
    await member.start()
    for i in range(RECORDS):
        put = pb.PutRequest(key=b"k%d" % i, value=b"v%d" % i)
        await member.propose(InternalRequest(put=put))
    return member


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def run(tmp_path: Path, scenario: Callable[[RaftMember, Path], Awaitable[None]]) -> None:
    async def main() -> None:
        key_file = write_key_file(tmp_path / "keys.yaml", "k1", {"k1": K1})
        member = await encrypted_member(tmp_path, key_file)
        try:
            await until(
                lambda: member.encryption is not None and member.encryption.progress().complete
            )
            await scenario(member, key_file)
        finally:
            await member.stop()

    asyncio.run(main())


K1, K2 = secret(), secret()


def test_progress_counts_down_to_a_complete_rotation(tmp_path: Path) -> None:
    async def scenario(member: RaftMember, key_file: Path) -> None:
        encryption = member.encryption
        assert encryption is not None
        write_key_file(key_file, "k2", {"k1": K1, "k2": K2})
        assert encryption.reload("test")
        started = encryption.progress()
        assert (started.active_key, started.complete) == ("k2", False)
        assert started.records_remaining == -1  # not counted yet
        assert started.wal_holds_other_keys
        await until(lambda: encryption.progress().complete)
        done = encryption.progress()
        assert done.records_remaining == 0
        assert done.records_resealed >= RECORDS
        assert not done.wal_holds_other_keys
        assert encryption.keys_in_use() == {"k2"}

    run(tmp_path, scenario)


def test_a_reload_that_drops_a_key_still_in_use_changes_nothing(tmp_path: Path) -> None:
    async def scenario(member: RaftMember, key_file: Path) -> None:
        encryption = member.encryption
        assert encryption is not None
        write_key_file(key_file, "k2", {"k1": K1, "k2": K2})
        assert encryption.reload("test")
        # The pass has not run yet: records under k1 remain, so k1 must stay.
        write_key_file(key_file, "k2", {"k2": K2})
        assert not encryption.reload("test")
        assert member.keyring.key_ids == {"k1", "k2"}
        await until(lambda: encryption.progress().complete)
        assert encryption.reload("test")
        assert member.keyring.key_ids == {"k2"}
        value = member.store.range(b"k7", None).kvs[0].value
        assert value == b"v7"

    run(tmp_path, scenario)


def test_a_malformed_key_file_keeps_the_keys_in_use(tmp_path: Path) -> None:
    async def scenario(member: RaftMember, key_file: Path) -> None:
        encryption = member.encryption
        assert encryption is not None
        key_file.write_text("active: k9\nkeys: []\n")
        assert not encryption.reload("test")
        assert (member.keyring.active, member.keyring.key_ids) == ("k1", {"k1"})

    run(tmp_path, scenario)


def test_rotation_progress_is_exported_as_cairn_encryption_metrics(tmp_path: Path) -> None:
    async def scenario(member: RaftMember, key_file: Path) -> None:
        encryption = member.encryption
        assert encryption is not None
        registry = MetricsRegistry()
        connect_member(registry, member, RpcStats(), dict)

        def scrape() -> dict[str, float]:
            families = parse(registry.exposition().decode())
            return {name: families[name].value() for name in ENCRYPTION_METRICS}

        write_key_file(key_file, "k2", {"k1": K1, "k2": K2})
        assert encryption.reload("test")
        pending = scrape()
        assert pending["cairn_encryption_enabled"] == 1
        assert pending["cairn_encryption_reencryption_complete"] == 0
        assert pending["cairn_encryption_records_remaining"] != 0  # -1 counting, or > 0
        await until(lambda: encryption.progress().complete)
        done = scrape()
        assert done["cairn_encryption_reencryption_complete"] == 1
        assert done["cairn_encryption_records_remaining"] == 0
        assert done["cairn_encryption_records_resealed_total"] >= RECORDS

    run(tmp_path, scenario)


ENCRYPTION_METRICS = (
    "cairn_encryption_enabled",
    "cairn_encryption_records_remaining",
    "cairn_encryption_records_resealed_total",
    "cairn_encryption_reencryption_complete",
)
