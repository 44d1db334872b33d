"""The WAL with a keyring: entries sealed on disk, bound to their place, opened on replay."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.sealing.keys import keyring, secret

from cairn.sealing import Keyring, TamperedRecordError, UnknownKeyError
from cairn.wal import WAL, Entry, SnapshotMarker
from cairn.wal.framing import frame, scan_frames
from cairn.wal.records import TYPE_SEALED_ENTRY


def entry(i: int) -> Entry:
    return Entry(i, 1, b"put secret-payload-%03d" % i)


def write(path: Path, ring: Keyring | None, indexes: range) -> None:
    opened = WAL.open(path, keyring=ring)[0] if WAL.exists(path) else None
    wal = opened or WAL.create(path, b"meta", keyring=ring)
    with wal:
        for i in indexes:
            wal.save([entry(i)])


def replay_data(path: Path, ring: Keyring | None) -> list[bytes]:
    wal, replay = WAL.open(path, keyring=ring)
    wal.close()
    return [e.data for e in replay.entries]


def test_sealed_entries_replay_to_their_data_and_hide_it_on_disk(tmp_path: Path) -> None:
    ring = keyring("k1", "k1")
    write(tmp_path / "wal", ring, range(1, 11))
    assert replay_data(tmp_path / "wal", ring) == [entry(i).data for i in range(1, 11)]
    for segment in (tmp_path / "wal").iterdir():
        assert b"secret-payload" not in segment.read_bytes()


def test_an_entry_replay_needs_whose_key_is_gone_refuses_to_open(tmp_path: Path) -> None:
    write(tmp_path / "wal", keyring("old", "old"), range(1, 4))
    with pytest.raises(UnknownKeyError, match="'old'"):
        WAL.open(tmp_path / "wal", keyring=keyring("new", "new"))


def test_a_sealed_wal_opened_without_keys_refuses_to_open(tmp_path: Path) -> None:
    write(tmp_path / "wal", keyring("k1", "k1"), range(1, 4))
    with pytest.raises(UnknownKeyError):
        WAL.open(tmp_path / "wal")


def test_sealed_data_moved_to_another_entry_is_refused(tmp_path: Path) -> None:
    ring = keyring("k1", "k1")
    write(tmp_path / "wal", ring, range(1, 3))
    (segment,) = (tmp_path / "wal").iterdir()
    data = segment.read_bytes()
    frames = scan_frames(data).frames
    sealed = [(o, p) for o, p in frames if p[0] == TYPE_SEALED_ENTRY]
    (first_at, first), (_, second) = sealed
    head = 18  # type, index, term, kind
    swapped = first[:head] + second[head:]
    rebuilt = data[:first_at] + frame(swapped) + data[first_at + len(frame(first)) :]
    segment.write_bytes(rebuilt)
    with pytest.raises(TamperedRecordError):
        WAL.open(tmp_path / "wal", keyring=ring)


def test_a_plaintext_wal_opens_with_a_keyring_and_new_entries_are_sealed(tmp_path: Path) -> None:
    ring = keyring("k1", "k1")
    write(tmp_path / "wal", None, range(1, 4))
    write(tmp_path / "wal", ring, range(4, 6))
    assert replay_data(tmp_path / "wal", ring) == [entry(i).data for i in range(1, 6)]
    wal, _ = WAL.open(tmp_path / "wal", keyring=ring)
    with wal:
        assert wal.key_ids_in_use() == {None, "k1"}


def test_after_a_rekey_a_snapshot_releases_every_entry_of_the_older_key(tmp_path: Path) -> None:
    old, new = secret(), secret()
    ring = Keyring("old", {"old": old})
    with WAL.create(tmp_path / "wal", b"meta", keyring=ring) as wal:
        for i in range(1, 6):
            wal.save([entry(i)])
        wal.rekey(lambda: ring.replace(Keyring("new", {"old": old, "new": new})))
        for i in range(6, 9):
            wal.save([entry(i)])
        assert wal.key_ids_in_use() == {"old", "new"}
        wal.save_snapshot(SnapshotMarker(index=8, term=1))
        wal.release_before(9)
        assert wal.key_ids_in_use() == {"new"}
    only_new = Keyring("new", {"new": new})
    assert replay_data(tmp_path / "wal", only_new) == []
    write(tmp_path / "wal", only_new, range(9, 11))
    assert replay_data(tmp_path / "wal", only_new) == [entry(9).data, entry(10).data]


def test_entries_a_snapshot_covers_do_not_need_their_key(tmp_path: Path) -> None:
    old, new = secret(), secret()
    ring = Keyring("old", {"old": old})
    with WAL.create(tmp_path / "wal", b"meta", keyring=ring) as wal:
        wal.save([entry(1), entry(2)])
        ring.replace(Keyring("new", {"old": old, "new": new}))
        wal.save([entry(3)])
        wal.save_snapshot(SnapshotMarker(index=2, term=1))
    assert replay_data(tmp_path / "wal", Keyring("new", {"new": new})) == [entry(3).data]
