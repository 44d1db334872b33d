"""The MVCC backend with a keyring: history sealed on disk, plaintext to everything above it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import plyvel
import pytest
from tests.mvcc.harness import EVERYTHING, KV, put_op
from tests.sealing.keys import keyring, secret

from cairn.mvcc.backend import HISTORY, run_steps
from cairn.sealing import Keyring, TamperedRecordError, UnknownKeyError

VALUES = [b"secret-value-%d" % i for i in range(20)]


def fill(kv: KV) -> None:
    for i, value in enumerate(VALUES):
        kv.put(b"key-%d" % (i % 7), value)
    kv.txn(success=[put_op(b"txn-key", b"secret-in-txn")])
    kv.delete(b"key-1")
    kv.flush()


def stored_history(kv: KV) -> list[tuple[bytes, bytes]]:
    """The history records of an open store, as LevelDB holds them."""
    return list(kv.backend.db.iterator(prefix=HISTORY))


def raw_history(path: Path) -> list[tuple[bytes, bytes]]:
    db = plyvel.DB(str(path))
    try:
        return list(db.iterator(prefix=HISTORY))
    finally:
        db.close()


def test_history_records_are_sealed_on_disk_and_read_back_in_clear(tmp_path: Path) -> None:
    kv = KV(tmp_path / "db", keyring=keyring("k1", "k1"))
    fill(kv)
    assert kv.get(b"key-0").kvs[0].value == VALUES[14]
    assert kv.get(b"txn-key").kvs[0].value == b"secret-in-txn"
    kv.close()
    for file in (tmp_path / "db").iterdir():
        data = file.read_bytes()
        assert b"secret-" not in data, file.name


def test_a_restart_with_the_key_file_reads_identically(tmp_path: Path) -> None:
    ring = keyring("k1", "k1")
    kv = KV(tmp_path / "db", keyring=ring)
    fill(kv)
    before = {rev: kv.get(*EVERYTHING, revision=rev) for rev in range(1, kv.revision + 1)}
    kv.restart()
    after = {rev: kv.get(*EVERYTHING, revision=rev) for rev in range(1, kv.revision + 1)}
    assert after == before
    kv.close()


def test_a_store_sealed_with_a_key_no_longer_in_the_file_refuses_to_open(tmp_path: Path) -> None:
    kv = KV(tmp_path / "db", keyring=keyring("old", "old"))
    fill(kv)
    kv.close()
    with pytest.raises(UnknownKeyError, match="'old'"):
        KV(tmp_path / "db", keyring=keyring("new", "new"))


def test_a_sealed_store_opened_without_keys_refuses_to_open(tmp_path: Path) -> None:
    kv = KV(tmp_path / "db", keyring=keyring("k1", "k1"))
    fill(kv)
    kv.close()
    with pytest.raises(UnknownKeyError):
        KV(tmp_path / "db")


def test_two_history_records_swapped_on_disk_are_refused(tmp_path: Path) -> None:
    ring = keyring("k1", "k1")
    kv = KV(tmp_path / "db", keyring=ring)
    fill(kv)
    kv.close()
    (key_a, value_a), (key_b, value_b) = raw_history(tmp_path / "db")[:2]
    db = plyvel.DB(str(tmp_path / "db"))
    db.put(key_a, value_b)
    db.put(key_b, value_a)
    db.close()
    with pytest.raises(TamperedRecordError):
        KV(tmp_path / "db", keyring=ring)


def test_hash_kv_is_the_same_sealed_with_any_key_or_none(tmp_path: Path) -> None:
    hashes = []
    for number, ring in enumerate([keyring("a", "a"), keyring("b", "b"), None]):
        kv = KV(tmp_path / f"db{number}", keyring=ring)
        fill(kv)
        hashes.append(kv.store.hash_kv(0))
        kv.close()
    assert hashes[0] == hashes[1] == hashes[2]


def test_hash_kv_in_steps_opens_sealed_records_like_the_hash_in_one_go(tmp_path: Path) -> None:
    sealed, clear = KV(tmp_path / "sealed", keyring=keyring("a", "a")), KV(tmp_path / "clear")
    try:
        fill(sealed)
        fill(clear)
        assert run_steps(sealed.store.hash_kv_steps(0, chunk_records=2)) == clear.store.hash_kv(0)
    finally:
        sealed.close()
        clear.close()


def reseal_all(kv: KV) -> Counter[str | None]:
    rewritten: Counter[str | None] = Counter()
    cursor: bytes | None = b""
    while cursor is not None:
        cursor, step = kv.backend.reseal(cursor, 3)
        rewritten.update(step)
    return rewritten


def survey_all(kv: KV) -> Counter[str | None]:
    counts: Counter[str | None] = Counter()
    cursor: bytes | None = b""
    while cursor is not None:
        cursor, step = kv.backend.survey(cursor, 4)
        counts.update(step)
    return counts


def test_resealing_moves_every_record_to_the_new_active_key(tmp_path: Path) -> None:
    old, new = secret(), secret()
    ring = Keyring("old", {"old": old})
    kv = KV(tmp_path / "db", keyring=ring)
    fill(kv)
    records = len(stored_history(kv))
    ring.replace(Keyring("new", {"old": old, "new": new}))
    assert survey_all(kv) == Counter({"old": records})
    assert reseal_all(kv) == Counter({"old": records})
    assert survey_all(kv) == Counter({"new": records})
    expected = kv.get(*EVERYTHING)
    kv.close()
    reopened = KV(tmp_path / "db", keyring=Keyring("new", {"new": new}))
    assert reopened.get(*EVERYTHING) == expected
    reopened.close()


def test_a_plaintext_store_is_sealed_by_resealing_and_unsealed_back(tmp_path: Path) -> None:
    kv = KV(tmp_path / "db")
    fill(kv)
    records = len(stored_history(kv))
    assert survey_all(kv) == Counter({None: records})
    ring = keyring("k1", "k1")
    kv.backend.keyring.replace(ring)
    assert reseal_all(kv) == Counter({None: records})
    assert all(b"secret-" not in value for _, value in stored_history(kv))
    kv.backend.keyring.replace(Keyring(None, {"k1": ring._state.secrets["k1"]}))
    assert reseal_all(kv) == Counter({"k1": records})
    assert survey_all(kv) == Counter({None: records})
    kv.close()
    plain = KV(tmp_path / "db")
    assert plain.get(b"txn-key").kvs[0].value == b"secret-in-txn"
    plain.close()


def test_defragment_copies_sealed_records_as_they_are(tmp_path: Path) -> None:
    ring = keyring("k1", "k1")
    kv = KV(tmp_path / "db", keyring=ring)
    fill(kv)
    kv.backend.copy_to(str(tmp_path / "copy"))
    kv.close()
    assert all(b"secret-" not in v for _, v in raw_history(tmp_path / "copy"))
    copy = KV(tmp_path / "copy", keyring=ring)
    assert copy.get(b"txn-key").kvs[0].value == b"secret-in-txn"
    copy.close()


def test_one_reseal_step_reads_at_most_its_limit_and_resumes_after_it(tmp_path: Path) -> None:
    old, new = secret(), secret()
    ring = Keyring("old", {"old": old})
    kv = KV(tmp_path / "db", keyring=ring)
    fill(kv)
    ring.replace(Keyring("new", {"old": old, "new": new}))
    first_key, _ = stored_history(kv)[0]
    cursor, step = kv.backend.reseal(b"", 5)
    assert step == Counter({"old": 5})
    assert cursor is not None and cursor > first_key
    assert survey_all(kv) == Counter({"new": 5, "old": len(stored_history(kv)) - 5})
    _, following = kv.backend.reseal(cursor, 5)
    assert following == Counter({"old": 5})
    kv.close()
