"""Opening a WAL after a crash: torn tails are repaired, every other kind of damage is refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cairn.wal import WAL, Entry, HardState, SnapshotMarker, WALCorruptError
from cairn.wal.framing import HEADER_SIZE, frame, scan_frames


def entry(i: int) -> Entry:
    return Entry(i, 1, b"payload-%03d" % i * 3)


def make_wal(path: Path, count: int = 10, segment_bytes: int = 1 << 20) -> list[Path]:
    """A WAL holding entries 1..count, one save each; returns its segment files."""
    with WAL.create(path, b"meta", segment_bytes=segment_bytes) as wal:
        for i in range(1, count + 1):
            wal.save([entry(i)])
        return wal.segments


def record_offsets(segment: Path) -> list[int]:
    return [offset for offset, _ in scan_frames(segment.read_bytes()).frames]


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def open_replay(path: Path):
    wal, replay = WAL.open(path)
    wal.close()
    return replay


# ---------------------------------------------------------------------------- torn tails


@pytest.mark.parametrize(
    "cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1, HEADER_SIZE + 10, -1]
)
def test_torn_tail_is_truncated_logged_and_appends_continue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: int
) -> None:
    (segment,) = make_wal(tmp_path / "wal")
    last_record = record_offsets(segment)[-1]
    size = segment.stat().st_size
    cut_at = size + cut if cut < 0 else last_record + cut
    with segment.open("r+b") as file:
        file.truncate(cut_at)

    with caplog.at_level(logging.WARNING, logger="cairn.wal"):
        wal, replay = WAL.open(tmp_path / "wal")
    with wal:
        assert replay.entries == [entry(i) for i in range(1, 10)]
        assert wal.last_index == 9
        assert segment.stat().st_size == last_record
        (warning,) = [r for r in caplog.records if r.name == "cairn.wal"]
        assert warning.levelno == logging.WARNING
        message = warning.getMessage()
        assert segment.name in message
        assert f"offset {last_record}" in message
        assert f"truncated {cut_at - last_record} bytes" in message
        wal.save([entry(10), entry(11)])
    assert open_replay(tmp_path / "wal").entries == [entry(i) for i in range(1, 12)]


def test_zero_filled_tail_is_truncated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Some file systems extend the file before its data lands; the crash leaves zeros."""
    (segment,) = make_wal(tmp_path / "wal")
    size = segment.stat().st_size
    with segment.open("ab") as file:
        file.write(bytes(4096))
    with caplog.at_level(logging.WARNING, logger="cairn.wal"):
        replay = open_replay(tmp_path / "wal")
    assert replay.entries == [entry(i) for i in range(1, 11)]
    assert segment.stat().st_size == size
    assert "truncated 4096 bytes" in caplog.text


def test_last_record_with_zeroed_payload_is_a_torn_tail(tmp_path: Path) -> None:
    (segment,) = make_wal(tmp_path / "wal")
    last_record = record_offsets(segment)[-1]
    data = segment.read_bytes()
    segment.write_bytes(
        data[: last_record + HEADER_SIZE] + bytes(len(data) - last_record - HEADER_SIZE)
    )
    assert open_replay(tmp_path / "wal").entries == [entry(i) for i in range(1, 10)]
    assert segment.stat().st_size == last_record


def test_partly_written_header_followed_by_zeros_is_a_torn_tail(tmp_path: Path) -> None:
    (segment,) = make_wal(tmp_path / "wal")
    last_record = record_offsets(segment)[-1]
    data = segment.read_bytes()
    segment.write_bytes(data[: last_record + 5] + bytes(len(data) - last_record - 5))
    assert open_replay(tmp_path / "wal").entries == [entry(i) for i in range(1, 10)]


def test_torn_tail_after_a_hard_state_keeps_earlier_hard_state(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m") as wal:
        wal.save([entry(1)], HardState(1, 1, 0))
        wal.save([entry(2)], HardState(1, 1, 1))
        (segment,) = wal.segments
    with segment.open("r+b") as file:
        file.truncate(segment.stat().st_size - 3)
    replay = open_replay(tmp_path / "wal")
    assert replay.entries == [entry(1), entry(2)]
    assert replay.hard_state == HardState(1, 1, 0)


# ---------------------------------------------------------------------------- corruption


def test_flipped_byte_in_earlier_record_is_corruption(tmp_path: Path) -> None:
    (segment,) = make_wal(tmp_path / "wal")
    target = record_offsets(segment)[5]
    flip_byte(segment, target + HEADER_SIZE + 4)
    with pytest.raises(WALCorruptError) as raised:
        WAL.open(tmp_path / "wal")
    message = str(raised.value)
    assert segment.name in message
    assert f"offset {target}" in message
    assert "refuses to start" in message
    assert raised.value.offset == target


def test_flipped_byte_in_length_field_of_earlier_record_is_corruption(tmp_path: Path) -> None:
    """A damaged length must not send the reader past EOF and look like a torn tail."""
    (segment,) = make_wal(tmp_path / "wal")
    target = record_offsets(segment)[4]
    flip_byte(segment, target + 1)  # second byte of the little-endian length
    with pytest.raises(WALCorruptError, match="header checksum") as raised:
        WAL.open(tmp_path / "wal")
    assert raised.value.offset == target
    assert segment.name in str(raised.value)


def test_flipped_length_in_the_last_record_is_corruption_not_a_torn_tail(tmp_path: Path) -> None:
    (segment,) = make_wal(tmp_path / "wal")
    target = record_offsets(segment)[-1]
    flip_byte(segment, target)
    with pytest.raises(WALCorruptError, match="header checksum"):
        WAL.open(tmp_path / "wal")


def test_corruption_leaves_the_files_untouched(tmp_path: Path) -> None:
    (segment,) = make_wal(tmp_path / "wal")
    flip_byte(segment, record_offsets(segment)[3] + HEADER_SIZE + 2)
    with segment.open("ab") as file:
        file.write(b"\x01\x02")  # a torn tail too: it must not be repaired either
    before = segment.read_bytes()
    with pytest.raises(WALCorruptError):
        WAL.open(tmp_path / "wal")
    assert segment.read_bytes() == before


def test_torn_record_in_an_older_segment_is_corruption(tmp_path: Path) -> None:
    segments = make_wal(tmp_path / "wal", count=40, segment_bytes=512)
    assert len(segments) >= 3
    older = segments[1]
    with older.open("r+b") as file:
        file.truncate(older.stat().st_size - 5)
    with pytest.raises(WALCorruptError, match="not the last") as raised:
        WAL.open(tmp_path / "wal")
    assert older.name in str(raised.value)


def test_deleted_middle_segment_is_corruption(tmp_path: Path) -> None:
    segments = make_wal(tmp_path / "wal", count=40, segment_bytes=512)
    segments[1].unlink()
    with pytest.raises(WALCorruptError, match="segment is missing") as raised:
        WAL.open(tmp_path / "wal")
    assert segments[2].name in str(raised.value)


def test_deleted_first_segment_without_snapshot_is_corruption(tmp_path: Path) -> None:
    segments = make_wal(tmp_path / "wal", count=40, segment_bytes=512)
    segments[0].unlink()
    with pytest.raises(WALCorruptError, match="missing"):
        WAL.open(tmp_path / "wal")


def test_released_segments_are_not_mistaken_for_missing_ones(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m", segment_bytes=512) as wal:
        for i in range(1, 41):
            wal.save([entry(i)])
        wal.save_snapshot(SnapshotMarker(30, 1))
        assert wal.release_before(30) > 0
    assert open_replay(tmp_path / "wal").entries == [entry(i) for i in range(31, 41)]


def test_unknown_record_type_is_corruption(tmp_path: Path) -> None:
    (segment,) = make_wal(tmp_path / "wal")
    with segment.open("ab") as file:
        file.write(frame(b"\x63unknown"))
    with pytest.raises(WALCorruptError, match="unknown record type 99"):
        WAL.open(tmp_path / "wal")


def test_torn_segment_header_is_corruption(tmp_path: Path) -> None:
    """Segments get their name only once their start records are durable: a crash can't tear them."""
    (segment,) = make_wal(tmp_path / "wal")
    with segment.open("r+b") as file:
        file.truncate(7)
    with pytest.raises(WALCorruptError, match="missing its header"):
        WAL.open(tmp_path / "wal")


def test_renamed_segment_is_corruption(tmp_path: Path) -> None:
    segments = make_wal(tmp_path / "wal", count=40, segment_bytes=512)
    last = segments[-1]
    seq, first_index = last.stem.split("-")
    last.rename(last.with_name(f"{seq}-{int(first_index, 16) + 1:016x}.wal"))
    with pytest.raises(WALCorruptError, match="does not match the file name"):
        WAL.open(tmp_path / "wal")
