"""The on-disk encoding: records round-trip and frames catch damage."""

from __future__ import annotations

import pytest

from cairn.wal import Entry, HardState, SnapshotMarker
from cairn.wal.framing import HEADER_SIZE, FrameCorruptError, frame, scan_frames
from cairn.wal.records import Metadata, Record, RecordError, SegmentHeader, decode, encode


@pytest.mark.parametrize(
    "record",
    [
        Entry(1, 1, b""),
        Entry(2**64 - 1, 2**64 - 1, b"\x00" * 1000, kind=1),
        HardState(term=3, vote=2, commit=1),
        SnapshotMarker(index=10, term=2),
        SegmentHeader(seq=5, first_index=99),
        Metadata(b"member"),
    ],
)
def test_record_round_trip(record: Record) -> None:
    assert decode(encode(record)) == record


def test_out_of_range_values_are_rejected_when_encoding() -> None:
    with pytest.raises(ValueError):
        encode(Entry(-1, 1, b""))
    with pytest.raises(ValueError):
        encode(HardState(2**64, 0, 0))


def test_wrong_size_fixed_record_is_a_record_error() -> None:
    with pytest.raises(RecordError, match="hard state"):
        decode(encode(HardState(1, 2, 3)) + b"\x00")


def test_frames_round_trip() -> None:
    payloads = [b"\x03a", b"\x04" + bytes(100), b"\x05z"]
    buf = b"".join(frame(p) for p in payloads)
    scan = scan_frames(buf)
    assert [p for _, p in scan.frames] == payloads
    assert scan.end == len(buf)
    assert scan.torn_reason is None


def test_zero_bytes_never_parse_as_a_frame() -> None:
    scan = scan_frames(bytes(HEADER_SIZE * 3))
    assert scan.frames == []
    assert scan.end == 0
    assert scan.torn_reason is not None


def test_damaged_header_with_data_after_it_is_corruption() -> None:
    buf = bytearray(frame(b"\x03first") + frame(b"\x03second"))
    buf[0] ^= 0x01
    with pytest.raises(FrameCorruptError) as raised:
        scan_frames(bytes(buf))
    assert raised.value.offset == 0
