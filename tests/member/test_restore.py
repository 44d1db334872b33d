"""`cairn snapshot restore` on the data dir level: what the new data dir holds, and what makes
a restore refuse (leaving no data dir a member could start from)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.member.test_backup import _damaged, _save, _store

from cairn.member import snapshot_meta
from cairn.member.identity import Identity
from cairn.member.restore import RestoreConfig, RestoreError, restore
from cairn.mvcc.backend import ALARMS, LEASES, MEMBERS, Backend
from cairn.proto import rpc_pb2 as pb
from cairn.wal import WAL

CLUSTER = {"n1": ["http://10.0.0.1:2380"], "n2": ["http://10.0.0.2:2380"]}


def _config(backup: Path, data_dir: Path, **overrides: object) -> RestoreConfig:
    fields: dict[str, object] = {
        "backup_path": str(backup),
        "name": "n1",
        "initial_cluster": CLUSTER,
        "initial_cluster_token": "new-token",
        "initial_advertise_peer_urls": ["http://10.0.0.1:2380"],
        "data_dir": str(data_dir),
    }
    fields.update(overrides)
    return RestoreConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    kv = _store(tmp_path)
    kv.grant(77, ttl=60)
    kv.put(b"leased", b"x", lease=77)
    kv.backend.write_batch(
        {MEMBERS + (123).to_bytes(8, "big"): b"old member", ALARMS + b"old": b""}
    )
    path = tmp_path / "b.db"
    _save(kv, path)
    kv.close()
    return path


def test_the_data_dir_holds_the_new_cluster_and_every_record_but_the_old_membership(
    saved: Path, tmp_path: Path
) -> None:
    identity, meta = restore(_config(saved, tmp_path / "restored"))
    assert identity == Identity.bootstrap("n1", CLUSTER, "new-token")
    backend = Backend(str(tmp_path / "restored" / "member" / "db"))
    try:
        table = [pb.Member.FromString(v) for _, v in backend.scan(MEMBERS)]
        assert sorted((m.name, list(m.peerURLs)) for m in table) == sorted(
            (n, u) for n, u in CLUSTER.items()
        )
        assert list(backend.scan(ALARMS)) == []
        assert [k for k, _ in backend.scan(LEASES)] == [(77).to_bytes(8, "big")]
        (conf,) = [m for m in snapshot_meta.load(backend) if m.index == meta.applied_index]
        assert set(conf.conf_state.voters) == {m.ID for m in table}
    finally:
        backend.close()
    wal, replay = WAL.open(tmp_path / "restored" / "member" / "wal")
    wal.close()
    assert Identity.from_bytes(replay.metadata) == identity
    assert replay.snapshot is not None and replay.snapshot.index == meta.applied_index


def test_an_existing_empty_data_dir_is_used(saved: Path, tmp_path: Path) -> None:
    (tmp_path / "mount").mkdir()
    restore(_config(saved, tmp_path / "mount"))
    assert (tmp_path / "mount" / "member" / "wal").is_dir()


def test_a_non_empty_data_dir_is_refused_with_etcdutls_message(saved: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("keep me")
    with pytest.raises(RestoreError) as refused:
        restore(_config(saved, tmp_path / "busy"))
    assert str(refused.value) == f'data-dir "{tmp_path / "busy"}" not empty or could not be read'
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["something"]


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_damaged_backup_leaves_no_data_dir(damage: str, tmp_path: Path) -> None:
    bad = _damaged(tmp_path, damage)
    with pytest.raises(RestoreError):
        restore(_config(Path(bad), tmp_path / "restored"))
    assert not (tmp_path / "restored").exists()


def test_damage_found_past_a_skipped_hash_check_leaves_no_data_dir(tmp_path: Path) -> None:
    bad = _damaged(tmp_path, "flipped")
    with pytest.raises(RestoreError, match="image is corrupt"):
        restore(_config(Path(bad), tmp_path / "restored", skip_hash_check=True))
    assert not (tmp_path / "restored").exists()
