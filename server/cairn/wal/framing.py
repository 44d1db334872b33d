"""Record framing: how one payload sits in a segment file, and how a crash is told from damage.

A frame is a 12-byte header followed by the payload::

    u32 length        payload length in bytes (little endian)
    u32 payload_crc   zlib.crc32 of the payload
    u32 header_crc    zlib.crc32 of the 8 bytes above
    ... payload       length bytes; its first byte is the record type (never 0)

The header has its own CRC so that a damaged length field is caught as damage. Without it a
flipped bit in the length of a record in the middle of a file would make the reader run off the
end of the file and mistake the rest of the log for a torn write, truncating good data.

Why a crash can only produce a *torn tail*: every save() writes its frames with write() at the
end of the newest segment and then calls fdatasync() before it is acknowledged. A crash can
therefore leave the last frames of the file incomplete (the file ends early) or, on file systems
that grow the file before its data reaches the disk, filled with zero bytes. So a bad frame is
a torn tail only if nothing but zero bytes follows it; a bad frame with real data after it is
corruption. Since every payload starts with a non-zero type byte, zero bytes can never be the
start of a frame that was written.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

_LENGTH_AND_CRC = struct.Struct("<II")
_HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = _LENGTH_AND_CRC.size + _HEADER_CRC.size

#: Upper bound on one payload, to reject absurd lengths even if a damaged header passed its CRC.
MAX_PAYLOAD = 1 << 30


def frame(payload: bytes) -> bytes:
    """Return `payload` with its frame header in front."""
    if not payload or len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload size {len(payload)} out of range")
    length_and_crc = _LENGTH_AND_CRC.pack(len(payload), zlib.crc32(payload))
    return length_and_crc + _HEADER_CRC.pack(zlib.crc32(length_and_crc)) + payload


class FrameCorruptError(Exception):
    """A frame is damaged in a way a crash cannot explain (internal; carries the offset)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


@dataclass
class FrameScan:
    """The result of reading every frame of one file.

    `frames` holds (offset, payload) for each intact frame, in file order. `end` is the offset
    just after the last intact frame. If the file continues past `end` with a torn frame,
    `torn_reason` says why it is considered torn; the bytes from `end` to EOF can be dropped.
    """

    frames: list[tuple[int, bytes]] = field(default_factory=list)
    end: int = 0
    torn_reason: str | None = None


def _only_zeros(buf: bytes, start: int) -> bool:
    return not buf[start:].strip(b"\0")


def scan_frames(buf: bytes) -> FrameScan:
    """Split `buf` into frames, classifying a bad frame as a torn tail or as corruption.

    Raises FrameCorruptError for corruption. A torn tail is reported in the result, not raised,
    because whether it may be repaired depends on where the file sits in the log.
    """
    scan = FrameScan()
    size = len(buf)
    offset = 0
    while offset < size:
        if size - offset < HEADER_SIZE:
            # The file ends inside a header: the write of this frame never completed.
            scan.torn_reason = f"file ends inside a record header ({size - offset} bytes)"
            break
        length, payload_crc = _LENGTH_AND_CRC.unpack_from(buf, offset)
        (header_crc,) = _HEADER_CRC.unpack_from(buf, offset + _LENGTH_AND_CRC.size)
        if zlib.crc32(buf[offset : offset + _LENGTH_AND_CRC.size]) != header_crc:
            # A header that was only partly written is followed by nothing but zeros, because a
            # written payload starts with a non-zero type byte.
            if _only_zeros(buf, offset + HEADER_SIZE):
                scan.torn_reason = "incomplete record header followed only by zero bytes"
                break
            raise FrameCorruptError(offset, "record header checksum mismatch with data after it")
        if length == 0 or length > MAX_PAYLOAD:
            raise FrameCorruptError(offset, f"record length {length} out of range")
        start = offset + HEADER_SIZE
        stop = start + length
        if stop > size:
            scan.torn_reason = (
                f"file ends inside a record payload ({size - start} of {length} bytes present)"
            )
            break
        payload = buf[start:stop]
        if zlib.crc32(payload) != payload_crc:
            if _only_zeros(buf, stop):
                scan.torn_reason = "last record payload checksum mismatch at end of file"
                break
            raise FrameCorruptError(offset, "record payload checksum mismatch with data after it")
        scan.frames.append((offset, payload))
        offset = stop
    scan.end = offset
    return scan
