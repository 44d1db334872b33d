"""The TEST-ONLY --experimental-test-faults-file flag and its file format."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from cairn.cli import fault_file
from cairn.cli.config import add_flags, parse
from cairn.peer import PeerFaults
from cairn.wal import WAL, Entry, HardState


def test_the_flag_is_off_by_default_and_carried_when_given(tmp_path: Path) -> None:
    assert parse([], {}).test_faults_file == ""
    path = str(tmp_path / "m1.faults")
    assert parse([f"--experimental-test-faults-file={path}"], {}).test_faults_file == path


def test_the_flag_is_hidden_from_help() -> None:
    parser = argparse.ArgumentParser(prog="cairn serve")
    add_flags(parser)
    assert "experimental-test-faults-file" not in parser.format_help()


def test_the_file_lists_hex_member_ids_and_missing_or_empty_means_healed(tmp_path: Path) -> None:
    path = tmp_path / "faults"
    assert fault_file.read_blocked(path) == frozenset()
    path.write_text("8e9e05c52164694d\n\n  91bc3c398fb3c146  \nnot-hex\n")
    assert fault_file.read_blocked(path) == {0x8E9E05C52164694D, 0x91BC3C398FB3C146}
    path.write_text("")
    assert fault_file.read_blocked(path) == frozenset()


def test_apply_sets_exactly_the_listed_peers() -> None:
    faults = PeerFaults()
    assert fault_file.apply(faults, frozenset({1, 2}))
    assert not fault_file.apply(faults, frozenset({1, 2}))
    assert fault_file.apply(faults, frozenset({3}))
    assert faults.blocked == {3}
    assert fault_file.apply(faults, frozenset())
    assert faults.blocked == frozenset()


def test_watch_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "faults"
    faults = PeerFaults()

    async def scenario() -> None:
        task = asyncio.create_task(fault_file.watch(path, faults))
        path.write_text("a\n")
        await asyncio.sleep(fault_file.POLL_INTERVAL_S * 4)
        assert faults.blocked == {0xA}
        path.unlink()
        await asyncio.sleep(fault_file.POLL_INTERVAL_S * 4)
        assert faults.blocked == frozenset()
        task.cancel()

    asyncio.run(scenario())


def test_a_wal_fsync_delay_line_is_read_as_a_duration_and_is_not_a_peer(tmp_path: Path) -> None:
    path = tmp_path / "faults"
    assert fault_file.read_fsync_delay(path) == 0.0
    path.write_text("a\nwal-fsync-delay 200ms\n")
    assert fault_file.read_fsync_delay(path) == 0.2
    assert fault_file.read_blocked(path) == {0xA}
    path.write_text("wal-fsync-delay soon\n")
    assert fault_file.read_fsync_delay(path) == 0.0


def test_watch_slows_and_then_restores_the_wals_fsyncs(tmp_path: Path) -> None:
    path = tmp_path / "faults"
    wal = WAL.create(tmp_path / "wal", metadata=b"")
    try:

        async def scenario() -> None:
            task = asyncio.create_task(fault_file.watch(path, PeerFaults(), wal))
            path.write_text("wal-fsync-delay 50ms\n")
            await asyncio.sleep(fault_file.POLL_INTERVAL_S * 4)
            assert wal.fsync_delay_s == 0.05
            path.write_text("")
            await asyncio.sleep(fault_file.POLL_INTERVAL_S * 4)
            assert wal.fsync_delay_s == 0.0
            task.cancel()

        asyncio.run(scenario())
    finally:
        wal.close()


def test_a_delayed_wal_fsync_is_reported_as_slow(tmp_path: Path) -> None:
    wal = WAL.create(tmp_path / "wal", metadata=b"")
    seen: list[float] = []
    wal.on_fsync = seen.append
    try:
        wal.fsync_delay_s = 0.05
        wal.save([Entry(index=1, term=1, data=b"x")], HardState(term=1, vote=0, commit=0))
    finally:
        wal.close()
    assert seen
    assert min(seen) >= 0.05
    assert wal.bytes_written > 0
