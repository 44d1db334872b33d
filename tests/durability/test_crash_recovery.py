"""Does cairn keep acknowledged data when its process dies? Real `cairn serve` processes, real
files, SIGKILL and SIGTERM, and damage done to the WAL segment files by hand.

The contract under test (DESIGN.md, Storage): a write is acknowledged only after its WAL entry
is fdatasync'd; LevelDB is written without fsync and rebuilt from the WAL above its applied
index; a torn WAL tail is truncated, and corruption anywhere else is refused loudly.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest
from tests.conftest import ServerFactory
from tests.durability.harness import (
    FRAME_HEADER,
    RPC_TIMEOUT,
    TEAR_KINDS,
    Ledger,
    Workload,
    check_ledger,
    check_next_write,
    db_dir,
    frame_offsets,
    log_offset,
    log_since,
    open_channel,
    run_until_exit,
    tear,
    wal_segments,
    wal_snapshot,
)
from tests.support.servers import ServerProcess, ServerStartError

from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import KVStub

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

#: How long the writers run (after their first acknowledgements) before each SIGKILL.
KILL_MOMENTS = (0.2, 0.7, 1.3)


def _write_then_kill(server: ServerProcess, ledger: Ledger, tag: str, seconds: float) -> None:
    """Concurrent writers at full speed, then SIGKILL while their requests are in flight."""
    workload = Workload(server, ledger, tag).start()
    try:
        workload.wait_for_acks(50, timeout=15)
        time.sleep(seconds)
        assert workload.interrupt(server.kill) == -9
    finally:
        workload.stop()
    assert not workload.unexpected, workload.unexpected
    assert workload.cut_off > 0, "no request was in flight when the server died"


def _sequential_puts(server: ServerProcess, ledger: Ledger, prefix: str, count: int) -> int:
    with open_channel(server) as channel:
        kv = KVStub(channel)
        revision = 0
        for i in range(count):
            revision = ledger.put(kv, f"{prefix}/{i:03d}".encode(), f"value-{i}".encode())
        return revision


# ------------------------------------------------------------------------------ SIGKILL


@pytest.mark.parametrize(
    "extra_args",
    [(), ("--snapshot-count", "300")],
    ids=["no-snapshots", "snapshot-every-300-entries"],
)
def test_sigkill_mid_stream_loses_no_acknowledged_write(
    server_factory: ServerFactory, extra_args: tuple[str, ...]
) -> None:
    """Three rounds on one data dir: concurrent writers, SIGKILL at a different moment each
    time, restart, and every acknowledged write is there at its revision, with no gaps.

    With a small --snapshot-count the kills also land around snapshots (LevelDB synced, a
    snapshot marker in the WAL), and replay starts after the latest marker.
    """
    server = server_factory("cairn", extra_args=extra_args)
    ledger = Ledger()
    for number, seconds in enumerate(KILL_MOMENTS):
        _write_then_kill(server, ledger, f"round{number}", seconds)
        server.start()
        check_ledger(server, ledger)
        check_next_write(server, ledger, f"round{number}/next")
    assert len(ledger.acked) > 300
    if extra_args:
        assert "snapshot at index" in server.log_tail(10_000), "no snapshot was taken"


def test_sigkill_then_lost_leveldb_is_rebuilt_from_wal(server_factory: ServerFactory) -> None:
    """With no snapshot taken yet (default --snapshot-count), the WAL alone holds everything:
    delete LevelDB after a SIGKILL and the member rebuilds the same store from the WAL."""
    server = server_factory("cairn")
    ledger = Ledger()
    for number in range(2):
        _write_then_kill(server, ledger, f"round{number}", 0.5)
        shutil.rmtree(db_dir(server))
        offset = log_offset(server)
        server.start()
        assert re.search(r"replayed \d+ WAL entries \(1\.\.", log_since(server, offset)), (
            "the restart did not replay the WAL from its first entry:\n" + server.log_tail()
        )
        check_ledger(server, ledger)
        check_next_write(server, ledger, f"round{number}/next")


def test_lost_leveldb_behind_a_wal_snapshot_is_not_served_as_complete(
    server_factory: ServerFactory,
) -> None:
    """Once a snapshot marker covers entries, the WAL alone no longer rebuilds the store. A
    member whose state is older than that marker (here: LevelDB deleted) must refuse to start
    or recover everything; it must never serve a store missing acknowledged writes."""
    server = server_factory("cairn", extra_args=["--snapshot-count", "50"])
    ledger = Ledger()
    _sequential_puts(server, ledger, "key", 120)
    assert server.kill() == -9
    shutil.rmtree(db_dir(server))
    try:
        server.start()
    except ServerStartError as error:
        code = server.kill()
        assert code not in (0, None), f"exit code {code}"
        assert "refuses to start" in str(error) or "refuses to start" in server.log_tail()
        return
    check_ledger(server, ledger)


# ------------------------------------------------------------------------------ torn tail


@pytest.mark.parametrize("tear_kind", TEAR_KINDS)
def test_torn_wal_tail_is_truncated_and_logged(
    server_factory: ServerFactory, tear_kind: str
) -> None:
    """The last WAL record is half written, as a crash during the write can leave it.

    One put appends its entry and then a hard state; the tear hits the hard state, so the
    put itself (acknowledged and applied) must survive.
    """
    server = server_factory("cairn")
    ledger = Ledger()
    _sequential_puts(server, ledger, "early", 30)
    segment = wal_segments(server)[-1]
    before = segment.stat().st_size
    _sequential_puts(server, ledger, "last", 1)
    assert server.stop() == 0
    records = frame_offsets(segment.read_bytes(), before)
    assert len(records) >= 2, f"one put appended {len(records)} WAL record(s)"
    tear(segment, *records[-1], tear_kind)

    offset = log_offset(server)
    server.start()
    log = log_since(server, offset)
    torn = [line for line in log.splitlines() if "torn tail" in line]
    assert torn, f"no log line about the torn tail:\n{log}"
    assert segment.name in torn[0] and "truncated" in torn[0], torn[0]
    assert segment.stat().st_size >= records[-1][0], "truncated into intact records"
    check_ledger(server, ledger)
    check_next_write(server, ledger, "after-repair")
    # The repaired log is an ordinary log: a clean restart finds nothing to repair.
    offset = log_offset(server)
    assert server.stop() == 0
    server.start()
    assert "torn tail" not in log_since(server, offset)
    check_ledger(server, ledger)


@pytest.mark.parametrize("tear_kind", TEAR_KINDS)
def test_torn_unacknowledged_entry_is_dropped_and_its_revision_reused(
    server_factory: ServerFactory, tear_kind: str
) -> None:
    """A crash in the middle of writing a put's entry: it was never synced, acknowledged or
    applied, so it must vanish, and the next write takes its index and revision.

    Simulated faithfully: the put is made, then the WAL is torn inside its entry and the
    LevelDB state is put back to a copy taken before the put was applied.
    """
    server = server_factory("cairn")
    ledger = Ledger()
    last_acked = _sequential_puts(server, ledger, "early", 30)
    assert server.stop() == 0
    saved_db = server.base_dir / "db-before"
    shutil.copytree(db_dir(server), saved_db)
    server.start()
    segment = wal_segments(server)[-1]
    before = segment.stat().st_size
    with open_channel(server) as channel:
        response = KVStub(channel).Put(
            pb.PutRequest(key=b"doomed", value=b"never-acknowledged"), timeout=RPC_TIMEOUT
        )
    assert response.header.revision == last_acked + 1
    assert server.stop() == 0
    tear(segment, *frame_offsets(segment.read_bytes(), before)[0], tear_kind)
    shutil.rmtree(db_dir(server))
    shutil.copytree(saved_db, db_dir(server))

    offset = log_offset(server)
    server.start()
    assert "torn tail" in log_since(server, offset), server.log_tail()
    check_ledger(server, ledger)
    with open_channel(server) as channel:
        got = KVStub(channel).Range(pb.RangeRequest(key=b"doomed"), timeout=RPC_TIMEOUT)
        assert not got.kvs, f"the torn write is served: {got.kvs}"
    assert check_next_write(server, ledger, "after-repair") == last_acked + 1


# ------------------------------------------------------------------------------ corruption


#: Where one byte is flipped: (which record, which part of it, also tear the last record).
DAMAGES = {
    "payload-of-a-middle-record": ("middle", "payload", False),
    "length-of-a-middle-record": ("middle", "length", False),
    "payload-of-the-segment-header": ("first", "payload", False),
    "length-of-the-record-before-the-last": ("before-last", "length", False),
    "middle-record-and-a-torn-tail": ("middle", "payload", True),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_corruption_before_the_tail_is_refused(server_factory: ServerFactory, damage: str) -> None:
    """A damaged record with intact records after it is not something a crash leaves: the
    member must refuse to start, say which file is corrupt, and leave the WAL as it is."""
    which, part, also_tear = DAMAGES[damage]
    server = server_factory("cairn")
    ledger = Ledger()
    _sequential_puts(server, ledger, "key", 20)
    assert server.stop() == 0
    (segment,) = wal_segments(server)
    records = frame_offsets(segment.read_bytes())
    assert len(records) > 10
    start, size = {"first": records[0], "middle": records[len(records) // 2]}.get(
        which, records[-2]
    )
    data = bytearray(segment.read_bytes())
    if part == "payload":
        data[start + FRAME_HEADER.size + (size - FRAME_HEADER.size) // 2] ^= 0x01
    else:
        data[start] ^= 0x01  # the low byte of the length field
    segment.write_bytes(bytes(data))
    if also_tear:
        tear(segment, *records[-1], "in-payload")
    damaged = wal_snapshot(server)

    code, output, seconds = run_until_exit(server, timeout=20)
    assert code != 0, f"the server exited 0 on a corrupt WAL:\n{output}"
    assert seconds < 10, f"refusing took {seconds:.1f}s"
    assert "corrupt" in output.lower() and str(segment) in output, output
    assert "ready to serve" not in output, output
    assert wal_snapshot(server) == damaged, "the server modified the WAL it refused"


# ------------------------------------------------------------------------------ SIGTERM


def test_sigterm_mid_stream_exits_zero_and_keeps_every_write(
    server_factory: ServerFactory,
) -> None:
    server = server_factory("cairn")
    ledger = Ledger()
    workload = Workload(server, ledger, "graceful").start()
    try:
        workload.wait_for_acks(100, timeout=15)
        offset = log_offset(server)
        began = time.monotonic()
        code = workload.interrupt(lambda: server.stop(timeout=15))
        seconds = time.monotonic() - began
    finally:
        workload.stop()
    assert not workload.unexpected, workload.unexpected
    log = log_since(server, offset)
    assert code == 0, f"exit code {code} after SIGTERM:\n{log}"
    assert seconds < 10, f"graceful stop took {seconds:.1f}s"
    assert re.search(r"SIGTERM.*shutting down", log), log
    assert "stopped serving" in log, log

    server.start()
    check_ledger(server, ledger)
    check_next_write(server, ledger, "graceful/next")
