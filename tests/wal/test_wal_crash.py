"""A writer killed with SIGKILL loses no entry whose save() had returned."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import cairn
from cairn.wal import WAL, Entry

WRITER = r"""
import random, sys
from cairn.wal import WAL, Entry

wal, replay = WAL.open(sys.argv[1], segment_bytes=16384)
rng = random.Random(int(sys.argv[2]))
while True:
    first = wal.last_index + 1
    batch = [Entry(i, 1, b"entry-%d|" % i * (i % 7 + 1)) for i in range(first, first + rng.randint(1, 16))]
    wal.save(batch)
    print(batch[-1].index, flush=True)  # acknowledged: save() returned
"""


def expected(index: int) -> Entry:
    return Entry(index, 1, b"entry-%d|" % index * (index % 7 + 1))


def test_killed_writer_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    WAL.create(directory, b"crash-test", segment_bytes=16384).close()
    source_root = str(Path(cairn.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": source_root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rng = random.Random(1234)
    acknowledged = 0
    for round_number in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory), str(round_number)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert writer.stdout is not None
        stop_after = rng.randint(50, 300)
        for _ in range(stop_after):
            line = writer.stdout.readline()
            assert line, "writer exited early"
            acknowledged = int(line)
        writer.send_signal(signal.SIGKILL)
        # Lines printed before the kill are still in the pipe; they were acknowledged too.
        rest, _ = writer.communicate(timeout=10)
        for line in rest.split():
            acknowledged = int(line)
        assert writer.returncode == -signal.SIGKILL

        wal, replay = WAL.open(directory, segment_bytes=16384)
        wal.close()
        assert wal.last_index >= acknowledged
        assert replay.entries[:acknowledged] == [expected(i) for i in range(1, acknowledged + 1)]
        assert replay.entries == [expected(i) for i in range(1, wal.last_index + 1)]
    assert len(list(directory.glob("*.wal"))) > 1  # the kills also hit a rolled-over WAL
