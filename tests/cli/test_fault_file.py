"""The TEST-ONLY --experimental-test-faults-file flag and its file format."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from cairn.cli import fault_file
from cairn.cli.config import add_flags, parse
from cairn.peer import PeerFaults


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
