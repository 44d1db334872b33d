"""Reads LevelDB's own per-level statistics (the ``leveldb.stats`` property).

LevelDB prints a small table, one row per level that ever held a file: files, size, and the
time, bytes read and bytes written by compactions into that level, the sizes in whole
megabytes. Parsed here into numbers for the ``cairn_leveldb_*`` metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class LevelStats:
    level: int
    files: int
    size_bytes: float
    compaction_seconds: float
    read_bytes: float
    written_bytes: float


def parse_stats(text: str) -> list[LevelStats]:
    """The rows of a ``leveldb.stats`` table (headers and rules are skipped)."""
    rows: list[LevelStats] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 6 or not fields[0].isdigit():
            continue
        level, files, size_mb, seconds, read_mb, write_mb = fields
        rows.append(
            LevelStats(
                level=int(level),
                files=int(files),
                size_bytes=float(size_mb) * MIB,
                compaction_seconds=float(seconds),
                read_bytes=float(read_mb) * MIB,
                written_bytes=float(write_mb) * MIB,
            )
        )
    return rows
