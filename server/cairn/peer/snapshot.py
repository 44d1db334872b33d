"""Framing of a Raft snapshot transfer: cutting the state into chunks, and checking it whole.

A snapshot is the member's entire LevelDB state, so it is never one gRPC message: the sender
cuts it into chunks of at most ``snapshot_chunk_bytes``, and the first chunk announces the
total length. The receiver hands the data to the member as an async iterator that raises
:class:`SnapshotTruncated` if the transfer ends short (or runs long), so a member can never
mistake a cut-off transfer for a complete snapshot and install half a database.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from cairn.proto import peer_pb2

SnapshotHandler = Callable[[int, bytes, AsyncIterator[bytes]], Awaitable[None]]
"""``on_snapshot(from_id, message, data)``: read ``data`` to the end, persist it, then return;
the member steps ``message`` into Raft afterwards. Raising refuses the snapshot. Reading
``data`` raises :class:`SnapshotTruncated` if the transfer is cut short, and the call is
cancelled if the sender goes away: either way nothing may be installed."""

SnapshotData = AsyncIterable[bytes] | Iterable[bytes]
"""What a member may pass as snapshot state: any (async) iterable of byte strings."""


class SnapshotError(Exception):
    """A snapshot transfer failed."""


class SnapshotSendError(SnapshotError):
    """Sending failed; the member reports the snapshot as failed and Raft sends a new one."""


class SnapshotTruncated(SnapshotError):
    """The received data does not add up to the announced length."""


async def _pieces(data: SnapshotData) -> AsyncIterator[bytes]:
    if isinstance(data, AsyncIterable):
        async for piece in data:
            yield piece
    else:
        for piece in data:
            yield piece


async def write_snapshot(
    call: Any,
    hello: peer_pb2.PeerHello,
    message: bytes,
    data: SnapshotData,
    total_bytes: int,
    chunk_bytes: int,
) -> None:
    """Write the whole transfer on a SendSnapshot ``call`` and half-close it."""
    await call.write(peer_pb2.SnapshotChunk(hello=hello, message=message, total_bytes=total_bytes))
    sent = 0
    async for piece in _pieces(data):
        for offset in range(0, len(piece), chunk_bytes):
            part = piece[offset : offset + chunk_bytes]
            sent += len(part)
            if sent > total_bytes:
                raise SnapshotSendError(f"snapshot data exceeds the announced {total_bytes} bytes")
            await call.write(peer_pb2.SnapshotChunk(data=part))
    if sent != total_bytes:
        raise SnapshotSendError(f"snapshot data ended at {sent} of {total_bytes} bytes")
    await call.done_writing()


class IncomingSnapshot:
    """The data of one received transfer, as the async iterator the member reads."""

    def __init__(
        self, first: peer_pb2.SnapshotChunk, rest: AsyncIterator[peer_pb2.SnapshotChunk]
    ) -> None:
        self.total_bytes = first.total_bytes
        self.received = 0
        self._first = first.data
        self._rest = rest
        self._done = False

    @property
    def complete(self) -> bool:
        """Whether all announced data was read and the sender closed the transfer."""
        return self._done

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._read()

    async def _read(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._count(self._first)
        async for chunk in self._rest:
            if chunk.data:
                yield self._count(chunk.data)
        if self.received != self.total_bytes:
            raise SnapshotTruncated(
                f"snapshot transfer ended after {self.received} of {self.total_bytes} bytes"
            )
        self._done = True

    def _count(self, data: bytes) -> bytes:
        self.received += len(data)
        if self.received > self.total_bytes:
            raise SnapshotTruncated(
                f"snapshot transfer sent more than the announced {self.total_bytes} bytes"
            )
        return data
