"""Quick throughput measurement of WAL.save() (not a test; run it by hand).

    .venv/bin/python tests/wal/bench_wal_save.py [seconds-per-case]

Reports save() calls/s for batches of 1 and 128 entries of 300 bytes each, with a real
fdatasync and with fdatasync stubbed out (to separate the disk from the Python cost).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cairn.wal.wal as wal_module
from cairn.wal import WAL, Entry, HardState


def measure(batch_size: int, seconds: float, *, sync: bool) -> tuple[float, int]:
    real_sync = wal_module.fdatasync
    if not sync:
        wal_module.fdatasync = lambda fd: None
    try:
        with tempfile.TemporaryDirectory() as tmp, WAL.create(Path(tmp) / "wal", b"bench") as wal:
            data = b"x" * 300
            calls = 0
            start = time.perf_counter()
            deadline = start + seconds
            while time.perf_counter() < deadline:
                first = wal.last_index + 1
                batch = [Entry(first + i, 1, data) for i in range(batch_size)]
                wal.save(batch, HardState(1, 1, first + batch_size - 1))
                calls += 1
            elapsed = time.perf_counter() - start
            return calls / elapsed, len(wal.segments)
    finally:
        wal_module.fdatasync = real_sync


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    for sync in (True, False):
        for batch_size in (1, 128):
            rate, segments = measure(batch_size, seconds, sync=sync)
            label = "fdatasync" if sync else "no sync  "
            print(
                f"{label} batch={batch_size:4d}: {rate:10.0f} save()/s "
                f"{rate * batch_size:12.0f} entries/s  ({segments} segments)"
            )


if __name__ == "__main__":
    main()
