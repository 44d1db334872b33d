"""cairn's write-ahead log: CRC-framed records in segment files, fdatasync'd per save().

A write is acknowledged only once its entry is in the WAL; LevelDB is written without fsync and
rebuilt on start by replaying the entries above its applied index. See wal.py for the API and
framing.py / segment.py for the on-disk format.
"""

from cairn.wal.errors import WALCorruptError, WALError
from cairn.wal.records import ENTRY_CONF_CHANGE, ENTRY_NORMAL, Entry, HardState, SnapshotMarker
from cairn.wal.replay import Replay
from cairn.wal.wal import DEFAULT_SEGMENT_BYTES, WAL

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "ENTRY_CONF_CHANGE",
    "ENTRY_NORMAL",
    "WAL",
    "Entry",
    "HardState",
    "Replay",
    "SnapshotMarker",
    "WALCorruptError",
    "WALError",
]
