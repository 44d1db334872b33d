"""The image format a leader streams to a lagging follower: round trip and refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import plyvel
import pytest

from cairn.member import snapshot_image
from cairn.member.snapshot_image import ImageError, ImageWriter


def source(tmp_path: Path) -> plyvel.DB:
    db = plyvel.DB(str(tmp_path / "src"), create_if_missing=True)
    for i in range(3000):
        db.put(b"r%05d" % i, b"v" * (i % 50))
    db.put(b"mraft_snapshot", b"sender's own")
    db.put(b"empty-value", b"")
    return db


def image(db: plyvel.DB, excluded: tuple[bytes, ...], chunk: int) -> tuple[list[bytes], int]:
    async def collect() -> tuple[list[bytes], int]:
        handle = db.snapshot()
        count, size = await snapshot_image.measure(handle, excluded)
        db.put(b"written-after-the-handle", b"x")  # must not show up
        chunks = [c async for c in snapshot_image.stream(handle, count, excluded, chunk)]
        assert sum(len(c) for c in chunks) == size
        return chunks, count

    return asyncio.run(collect())


def test_an_image_round_trips_into_a_fresh_database_without_excluded_keys(
    tmp_path: Path,
) -> None:
    db = source(tmp_path)
    chunks, count = image(db, (b"mraft_snapshot",), chunk=1000)
    assert count == 3001
    writer = ImageWriter(str(tmp_path / "dst"))
    data = b"".join(chunks)
    for offset in range(0, len(data), 777):  # chunk borders that cut records anywhere
        writer.feed(data[offset : offset + 777])
    writer.finish({b"extra": b"1"})
    copy = plyvel.DB(str(tmp_path / "dst"))
    expected = {k: v for k, v in db.iterator() if k not in (b"mraft_snapshot",)}
    del expected[b"written-after-the-handle"]
    expected[b"extra"] = b"1"
    assert dict(copy.iterator()) == expected


def test_a_corrupt_or_short_image_is_refused(tmp_path: Path) -> None:
    db = source(tmp_path)
    data = bytearray(b"".join(image(db, (), chunk=4096)[0]))
    data[5000] ^= 0xFF
    writer = ImageWriter(str(tmp_path / "bad"))
    with pytest.raises(ImageError):
        writer.feed(bytes(data))
        writer.finish({})
    writer.abort()
    assert not (tmp_path / "bad").exists()
    short = ImageWriter(str(tmp_path / "short"))
    short.feed(bytes(data[:-100]))
    with pytest.raises(ImageError):
        short.finish({})
    short.abort()


def test_recover_puts_the_old_directory_back_after_a_crash_between_renames(
    tmp_path: Path,
) -> None:
    db_dir = tmp_path / "member" / "db"
    old = tmp_path / "member" / "db.old"
    old.mkdir(parents=True)
    (old / "CURRENT").write_text("x")
    leftover = Path(snapshot_image.incoming_dir(str(db_dir), 7, 1))
    leftover.mkdir()
    snapshot_image.recover(str(db_dir))
    assert (db_dir / "CURRENT").read_text() == "x"
    assert not old.exists()
    assert not leftover.exists()


def test_recover_keeps_the_swapped_in_image_after_a_crash_before_db_old_is_removed(
    tmp_path: Path,
) -> None:
    db_dir = tmp_path / "member" / "db"
    old = tmp_path / "member" / "db.old"
    db_dir.mkdir(parents=True)
    (db_dir / "CURRENT").write_text("image")
    old.mkdir()
    (old / "CURRENT").write_text("before the image")
    snapshot_image.recover(str(db_dir))
    assert (db_dir / "CURRENT").read_text() == "image"
    assert not old.exists()
