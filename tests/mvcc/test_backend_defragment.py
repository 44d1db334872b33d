"""Backend.copy_to + reopen, Defragment's mechanism: the copy holds every live record and
none of the space deleted ones took, which LevelDB's compact_range() alone does not give."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cairn.mvcc.backend import Backend

VALUES = 22
VALUE_BYTES = 20_000


def filled(path: Path) -> Backend:
    """A backend whose files hold VALUES deleted 20 kB values and one live record."""
    backend = Backend(str(path))
    backend.write_batch({b"r%03d" % i: os.urandom(VALUE_BYTES) for i in range(VALUES)})
    backend.write_batch({b"m": b"live"})
    backend.write_batch({}, [b"r%03d" % i for i in range(VALUES)])
    return backend


def swap(new: str, old: str) -> None:
    shutil.rmtree(old)
    os.rename(new, old)


def test_compact_range_alone_keeps_the_space_of_deleted_records(tmp_path: Path) -> None:
    # Why Defragment copies: if LevelDB ever reclaims this itself, this test says so.
    backend = filled(tmp_path / "db")
    backend.db.compact_range()
    assert backend.size_on_disk() > VALUES * VALUE_BYTES // 2
    backend.close()


def test_copy_and_reopen_keeps_every_record_and_drops_the_deleted_space(tmp_path: Path) -> None:
    backend = filled(tmp_path / "db")
    records = list(backend.db.iterator())
    backend.copy_to(str(tmp_path / "copy"))
    backend.reopen(lambda: swap(str(tmp_path / "copy"), str(tmp_path / "db")))
    try:
        assert [r for r in backend.db.iterator() if r[0] != b"msync_barrier"] == [
            r for r in records if r[0] != b"msync_barrier"
        ]
        assert backend.get(b"m") == b"live"
        assert backend.size_on_disk() < VALUE_BYTES
    finally:
        backend.close()


def test_size_in_use_never_exceeds_the_size_on_disk(tmp_path: Path) -> None:
    backend = filled(tmp_path / "db")
    try:
        assert 0 < backend.size_in_use() <= backend.size_on_disk()
    finally:
        backend.close()
