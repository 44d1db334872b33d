"""Normal operation of the WAL: saving, replaying, Raft overwrite rules, segments, release."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cairn.wal import WAL, Entry, HardState, SnapshotMarker, WALCorruptError, WALError


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(i, term, f"data-{i}-{term}".encode()) for i in range(first, last + 1)]


def reopen(path: Path, **kwargs: int):
    wal, replay = WAL.open(path, **kwargs)
    wal.close()
    return replay


def test_round_trip_of_entries_hard_state_and_metadata(tmp_path: Path) -> None:
    saved = [*entries(1, 3), Entry(4, 2, b"conf", kind=1), Entry(5, 2, b"")]
    with WAL.create(tmp_path / "wal", b"member=1,cluster=7") as wal:
        wal.save(saved, HardState(term=2, vote=1, commit=3))
        assert wal.last_index == 5

    replay = reopen(tmp_path / "wal")
    assert replay.metadata == b"member=1,cluster=7"
    assert replay.hard_state == HardState(term=2, vote=1, commit=3)
    assert replay.snapshot is None
    assert replay.entries == saved


def test_fresh_wal_replays_empty(tmp_path: Path) -> None:
    WAL.create(tmp_path / "wal", b"m").close()
    replay = reopen(tmp_path / "wal")
    assert (replay.metadata, replay.hard_state, replay.snapshot, replay.entries) == (
        b"m",
        None,
        None,
        [],
    )


def test_reopened_wal_continues_appending(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 3))
    wal, replay = WAL.open(tmp_path / "wal")
    with wal:
        assert wal.last_index == 3
        wal.save(entries(4, 6), HardState(1, 1, 6))
    replay = reopen(tmp_path / "wal")
    assert replay.entries == entries(1, 6)
    assert replay.hard_state == HardState(1, 1, 6)


def test_last_hard_state_wins_and_hard_state_alone_is_saved(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 2), HardState(1, 1, 1))
        wal.save([], HardState(2, 0, 2))
    assert reopen(tmp_path / "wal").hard_state == HardState(2, 0, 2)


def test_unsynced_commit_only_hard_state_is_still_written(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 2), HardState(term=1, vote=1, commit=1))
        wal.save([], HardState(term=1, vote=1, commit=2), sync=False)
    assert reopen(tmp_path / "wal").hard_state == HardState(term=1, vote=1, commit=2)


def test_entries_cannot_be_saved_unsynced(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        with pytest.raises(ValueError, match="always fdatasync"):
            wal.save(entries(1, 1), sync=False)
        assert wal.last_index == 0


def test_segment_cut_after_an_unsynced_hard_state_keeps_it(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m", segment_bytes=4096) as wal:
        for first in range(1, 200, 10):
            wal.save(entries(first, first + 9))
            wal.save([], HardState(term=1, vote=1, commit=first + 9), sync=False)
    replay = reopen(tmp_path / "wal", segment_bytes=4096)
    assert len(list((tmp_path / "wal").glob("*.wal"))) > 1
    assert replay.hard_state == HardState(term=1, vote=1, commit=200)
    assert [e.index for e in replay.entries] == list(range(1, 201))


def test_conflicting_suffix_is_replaced(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 10, term=1))
        wal.save(entries(6, 7, term=2))
        assert wal.last_index == 7
    assert reopen(tmp_path / "wal").entries == entries(1, 5, term=1) + entries(6, 7, term=2)


def test_conflicting_suffix_is_replaced_across_segments(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m", segment_bytes=300) as wal:
        for i in range(1, 21):
            wal.save(entries(i, i, term=1))
        assert len(wal.segments) >= 3  # entries 3..5 live in the first one
        wal.save(entries(3, 4, term=5))
        wal.save(entries(5, 5, term=5))
    assert reopen(tmp_path / "wal").entries == entries(1, 2) + entries(3, 5, term=5)


def test_save_rejects_gap_and_non_consecutive_batches(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 2))
        with pytest.raises(ValueError, match="first entry index"):
            wal.save(entries(4, 4))
        with pytest.raises(ValueError, match="not consecutive"):
            wal.save([Entry(3, 1, b""), Entry(5, 1, b"")])
        assert wal.last_index == 2
    assert reopen(tmp_path / "wal").entries == entries(1, 2)


def test_segment_rollover_and_replay_across_segments(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m", segment_bytes=1024) as wal:
        for i in range(1, 101):
            wal.save(entries(i, i), HardState(1, 1, i - 1))
        segments = wal.segments
    assert len(segments) > 5
    names = [path.name for path in segments]
    assert names == sorted(names)
    assert names[0] == "0000000000000000-0000000000000001.wal"
    replay = reopen(tmp_path / "wal", segment_bytes=1024)
    assert replay.entries == entries(1, 100)
    assert replay.hard_state == HardState(1, 1, 99)


def test_snapshot_marker_makes_replay_start_after_it(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 10))
        wal.save_snapshot(SnapshotMarker(index=6, term=1))
        wal.save(entries(11, 12))
    replay = reopen(tmp_path / "wal")
    assert replay.snapshot == SnapshotMarker(6, 1)
    assert replay.entries == entries(7, 12)


def test_snapshot_beyond_the_log_moves_last_index(tmp_path: Path) -> None:
    """A follower that receives a snapshot continues its log right after it."""
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 3))
        wal.save_snapshot(SnapshotMarker(index=50, term=4))
        assert wal.last_index == 50
        wal.save(entries(51, 52, term=4))
    wal, replay = WAL.open(tmp_path / "wal")
    with wal:
        assert wal.last_index == 52
    assert replay.entries == entries(51, 52, term=4)


def test_entries_covered_by_a_snapshot_cannot_be_overwritten(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 10))
        wal.save_snapshot(SnapshotMarker(8, 1))
        with pytest.raises(ValueError):
            wal.save(entries(8, 8, term=2))
        with pytest.raises(ValueError):
            wal.save_snapshot(SnapshotMarker(7, 1))


def test_release_before_removes_old_segments_and_replay_still_works(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m", segment_bytes=1024) as wal:
        for i in range(1, 101):
            wal.save(entries(i, i), HardState(1, 1, i))
        wal.save_snapshot(SnapshotMarker(60, 1))
        before = wal.segments
        removed = wal.release_before(60)
        after = wal.segments
        wal.save(entries(101, 102))
    assert removed > 0
    assert after == before[removed:]
    assert not any(path.exists() for path in before[:removed])
    assert min(int(path.name[17:33], 16) for path in after) <= 61

    replay = reopen(tmp_path / "wal", segment_bytes=1024)
    assert replay.metadata == b"m"
    assert replay.snapshot == SnapshotMarker(60, 1)
    assert replay.hard_state == HardState(1, 1, 100)
    assert replay.entries == entries(61, 102)


def test_release_before_keeps_entries_after_the_latest_snapshot(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m", segment_bytes=512) as wal:
        for i in range(1, 61):
            wal.save(entries(i, i))
        wal.save_snapshot(SnapshotMarker(20, 1))
        wal.release_before(1000)  # capped at the snapshot: entries 21.. must survive
    replay = reopen(tmp_path / "wal")
    assert replay.entries == entries(21, 60)


def test_release_before_never_removes_the_live_segment(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m", segment_bytes=512) as wal:
        for i in range(1, 61):
            wal.save(entries(i, i))
        wal.save_snapshot(SnapshotMarker(60, 1))
        wal.release_before(61)
        assert len(wal.segments) == 1
        wal.save(entries(61, 61))
    replay = reopen(tmp_path / "wal")
    assert replay.snapshot == SnapshotMarker(60, 1)
    assert replay.entries == entries(61, 61)


def test_exists_and_create_refuses_an_existing_wal(tmp_path: Path) -> None:
    assert not WAL.exists(tmp_path / "wal")
    WAL.create(tmp_path / "wal", b"m").close()
    assert WAL.exists(tmp_path / "wal")
    with pytest.raises(WALError, match="already exists"):
        WAL.create(tmp_path / "wal", b"m")


def test_open_without_a_wal_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WALError):
        WAL.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WALError, match="no WAL segments"):
        WAL.open(tmp_path / "empty")


def test_a_wal_can_only_be_open_once(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m"), pytest.raises(WALError, match="in use"):
        WAL.open(tmp_path / "wal")
    reopen(tmp_path / "wal")


def test_closed_wal_refuses_writes(tmp_path: Path) -> None:
    wal = WAL.create(tmp_path / "wal", b"m")
    wal.close()
    wal.close()
    with pytest.raises(WALError, match="closed"):
        wal.save(entries(1, 1))


def test_stray_tmp_segment_from_a_crashed_cut_is_removed(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save(entries(1, 2))
    stray = tmp_path / "wal" / "0000000000000001-0000000000000003.wal.tmp"
    stray.write_bytes(b"half a segment")
    assert reopen(tmp_path / "wal").entries == entries(1, 2)
    assert not stray.exists()


def test_save_from_a_worker_thread(tmp_path: Path) -> None:
    wal = WAL.create(tmp_path / "wal", b"m", segment_bytes=2048)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for i in range(1, 201):
                wal.save(entries(i, i))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    while thread.is_alive():
        wal.release_before(1)  # concurrent calls from another thread are serialized
    thread.join()
    wal.close()
    assert not errors
    assert reopen(tmp_path / "wal").entries == entries(1, 200)


def test_metadata_mismatch_between_segments_is_corruption(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"AAAA", segment_bytes=256) as wal:
        for i in range(1, 20):
            wal.save(entries(i, i))
        second = wal.segments[1]
    data = second.read_bytes()
    # Rewrite the metadata frame of the second segment with a different, validly framed value.
    from cairn.wal.framing import frame, scan_frames

    (_, _), (offset, payload) = scan_frames(data).frames[:2]
    forged = frame(payload.replace(b"AAAA", b"BBBB"))
    second.write_bytes(data[:offset] + forged + data[offset + len(forged) :])
    with pytest.raises(WALCorruptError, match="metadata differs"):
        WAL.open(tmp_path / "wal")


def test_failed_fdatasync_makes_the_wal_refuse_writes_until_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cairn.wal.wal as wal_module

    wal = WAL.create(tmp_path / "wal", b"m")
    wal.save(entries(1, 2))

    def failing_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(wal_module, "fdatasync", failing_sync)
    with pytest.raises(WALError, match="write failed"):
        wal.save(entries(3, 3))
    monkeypatch.undo()
    with pytest.raises(WALError, match="unusable"):
        wal.save(entries(3, 3))
    wal.close()

    # The failed save was never acknowledged; the WAL continues from what was.
    wal, replay = WAL.open(tmp_path / "wal")
    with wal:
        assert replay.entries == entries(1, 2)
        wal.save(entries(3, 3))
    assert reopen(tmp_path / "wal").entries == entries(1, 3)


def test_create_makes_missing_parent_directories(tmp_path: Path) -> None:
    WAL.create(tmp_path / "data" / "member" / "wal", b"m").close()
    assert WAL.exists(tmp_path / "data" / "member" / "wal")
