"""Property: whatever prefix of the file a crash leaves, reopening yields exactly that prefix."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.wal import WAL, Entry, HardState, SnapshotMarker
from cairn.wal.framing import HEADER_SIZE, scan_frames

Record = Entry | HardState | SnapshotMarker


def expected_state(
    records: list[Record],
) -> tuple[list[Entry], HardState | None, SnapshotMarker | None, int]:
    """A deliberately naive model of Raft log semantics: (entries, hard state, snapshot, last)."""
    log: list[Entry] = []
    hard_state = None
    snapshot = None
    for record in records:
        if isinstance(record, Entry):
            log = [e for e in log if e.index < record.index] + [record]
        elif isinstance(record, HardState):
            hard_state = record
        else:
            snapshot = record
    floor = snapshot.index if snapshot else 0
    last = max([floor] + [e.index for e in log])
    return [e for e in log if e.index > floor], hard_state, snapshot, last


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cut_at_any_point_reopens_to_exactly_the_written_prefix(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "wal"
        written: list[Record] = []
        with WAL.create(directory, b"metadata") as wal:
            for _ in range(data.draw(st.integers(1, 8), label="saves")):
                last = wal.last_index
                floor = written_snapshot_index(written)
                if data.draw(st.integers(0, 5)) == 0:
                    marker = SnapshotMarker(data.draw(st.integers(floor, last + 3)), 1)
                    wal.save_snapshot(marker)
                    written.append(marker)
                    continue
                first = data.draw(st.integers(floor + 1, last + 1), label="first")
                term = data.draw(st.integers(1, 5))
                batch = [
                    Entry(first + n, term, data.draw(st.binary(max_size=40)))
                    for n in range(data.draw(st.integers(0, 4)))
                ]
                hard_state = data.draw(st.none() | st.builds(HardState, *[st.integers(0, 9)] * 3))
                if not batch and hard_state is None:
                    hard_state = HardState(term, 0, 0)
                wal.save(batch, hard_state)
                written.extend(batch)
                if hard_state is not None:
                    written.append(hard_state)
            (segment,) = wal.segments

        content = segment.read_bytes()
        frames = scan_frames(content).frames
        assert len(frames) == 2 + len(written)  # segment header + metadata, then ours
        first_record = frames[2][0] if len(frames) > 2 else len(content)
        cut = data.draw(st.integers(first_record, len(content)), label="cut")
        zeros = data.draw(st.sampled_from([0, 0, 1, 100]), label="zero fill")
        damaged = content[:cut] + bytes(zeros)
        segment.write_bytes(damaged)

        # A record survives if all its bytes are on disk. (With zero fill, a record cut short
        # whose missing bytes were zeros anyway is complete: nothing can tell them apart.)
        complete = 0
        for offset, payload in frames[2:]:
            end = offset + HEADER_SIZE + len(payload)
            if damaged[offset:end] != content[offset:end]:
                break
            complete += 1
        entries, hard_state, snapshot, last = expected_state(written[:complete])

        wal, replay = WAL.open(directory)
        with wal:
            assert replay.metadata == b"metadata"
            assert replay.entries == entries
            assert replay.hard_state == hard_state
            assert replay.snapshot == snapshot
            assert wal.last_index == last
            wal.save([Entry(last + 1, 9, b"after")])
        wal, replay = WAL.open(directory)
        wal.close()
        assert replay.entries == [*entries, Entry(last + 1, 9, b"after")]


def written_snapshot_index(written: list[Record]) -> int:
    markers = [r.index for r in written if isinstance(r, SnapshotMarker)]
    return markers[-1] if markers else 0
