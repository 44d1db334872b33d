"""`cairn snapshot restore`: a backup file becomes the data dir of a member of a new cluster.

Every member of the new cluster is restored from the same file with the same
--initial-cluster and token, so all of them hold the same state and the same configuration,
as founders of a fresh cluster do: the member and cluster IDs are the ones `cairn serve`
derives for a fresh cluster with those flags (`Identity.bootstrap`), a new cluster ID, so a
member of the old cluster can never talk to the new one.

What is kept: every record of the backup as stored (keys and their whole history, the current
and the compacted revision, leases, auth data, values sealed by encryption at rest). What is
replaced: the member table (the new --initial-cluster) and the Raft configuration; alarms are
dropped (they name members of the old cluster; a quota alarm is raised again if the
database is still too large). The data dir starts as a Raft snapshot at the backup's applied
index, in term 1, with every new member a voter, and an empty log after it.

The new `member/` directory is built next to its final place and renamed into it only when
complete, so a restore that fails (a corrupt file found half-way, a full disk) leaves no
data dir a member could start from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass

import plyvel

from cairn.member import membership, snapshot_meta
from cairn.member.backup import BackupError, BackupFile, BackupMeta
from cairn.member.identity import Identity
from cairn.member.snapshot_meta import SnapshotMeta
from cairn.mvcc.backend import ALARMS, MEMBERS, Backend, meta_key
from cairn.mvcc.store import META_APPLIED_INDEX
from cairn.raft import ConfState
from cairn.wal import WAL, HardState, SnapshotMarker
from cairn.wal.segment import fsync_dir

log = logging.getLogger("cairn.restore")

# A restored cluster starts a new history of terms.
RESTORED_TERM = 1
_DROPPED_PREFIXES = (MEMBERS, ALARMS)
_BATCH_BYTES = 4 * 1024 * 1024


class RestoreError(Exception):
    """The restore was refused; the message is what the operator sees (etcd's where etcd
    has one for the same mistake)."""


@dataclass(frozen=True)
class RestoreConfig:
    """etcdctl 3.4's `snapshot restore` flags."""

    backup_path: str
    name: str
    initial_cluster: dict[str, list[str]]
    initial_cluster_token: str
    initial_advertise_peer_urls: list[str]
    data_dir: str
    skip_hash_check: bool = False


def check_configuration(config: RestoreConfig) -> None:
    """etcd's checks of the new cluster's flags, with its messages."""
    seen: set[str] = set()
    for urls in config.initial_cluster.values():
        for url in urls:
            if url in seen:
                text = ",".join(f"{n}={u}" for n, us in config.initial_cluster.items() for u in us)
                raise RestoreError(f"initial cluster {text} has duplicate url")
            seen.add(url)
    own = config.initial_cluster.get(config.name)
    if own is None:
        raise RestoreError(
            f'couldn\'t find local name "{config.name}" in the initial cluster configuration'
        )
    advertised = sorted(config.initial_advertise_peer_urls)
    if sorted(own) != advertised:
        listed = ",".join(f"{config.name}={u}" for u in sorted(own))
        flag = ",".join(config.initial_advertise_peer_urls)
        if len(own) == len(advertised):
            why = f'resolved urls: "{",".join(advertised)}" != "{",".join(sorted(own))}"'
        else:
            why = f"len({_go_strings(advertised)}) != len({_go_strings(sorted(own))})"
        raise RestoreError(
            f"--initial-cluster has {listed} but missing from "
            f"--initial-advertise-peer-urls={flag} ({why})"
        )


def _go_strings(values: list[str]) -> str:
    """Go's %q of a []string, as etcd prints one in this message."""
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def check_data_dir(data_dir: str) -> None:
    """etcdutl's rule: the data dir may exist (a mount point) but must be empty."""
    if not os.path.exists(data_dir):
        return
    try:
        empty = os.path.isdir(data_dir) and not os.listdir(data_dir)
    except OSError:
        empty = False
    if not empty:
        raise RestoreError(f'data-dir "{data_dir}" not empty or could not be read')


def restore(config: RestoreConfig) -> tuple[Identity, BackupMeta]:
    """Write the new data dir; returns who the member is and what the backup held."""
    check_configuration(config)
    check_data_dir(config.data_dir)
    try:
        backup = BackupFile(config.backup_path)
        backup.verify_hash(skip=config.skip_hash_check)
    except BackupError as error:
        raise RestoreError(str(error)) from None
    identity = Identity.bootstrap(config.name, config.initial_cluster, config.initial_cluster_token)
    member_dir = os.path.join(config.data_dir, "member")
    staging = os.path.join(config.data_dir, "member.restoring")
    created_data_dir = not os.path.exists(config.data_dir)
    os.makedirs(staging, mode=0o700)
    try:
        _write_db(os.path.join(staging, "db"), backup, config)
        _write_wal(os.path.join(staging, "wal"), identity, _applied_index(backup.meta))
        os.rename(staging, member_dir)
        fsync_dir(config.data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_data_dir:
            with contextlib.suppress(OSError):
                os.rmdir(config.data_dir)
        raise
    return identity, backup.meta


def _applied_index(meta: BackupMeta) -> int:
    # A Raft snapshot needs an index of at least 1; every backup of a running member has one.
    return max(meta.applied_index, 1)


def _write_db(path: str, backup: BackupFile, config: RestoreConfig) -> None:
    """The backup's records minus the old membership, plus the new table and configuration.

    Nothing is synced before the last record was read: the file's CRC is checked at the end
    of `records()`, and a failure there removes the whole directory."""
    db = plyvel.DB(path, create_if_missing=True, error_if_exists=True)
    try:
        batch, size = db.write_batch(), 0
        try:
            for key, value in backup.records():
                if key.startswith(_DROPPED_PREFIXES):
                    continue
                batch.put(key, value)
                size += len(key) + len(value)
                if size >= _BATCH_BYTES:
                    batch.write()
                    batch, size = db.write_batch(), 0
        except BackupError as error:
            raise RestoreError(str(error)) from None
        batch.write()
        founders = membership.founders(config.initial_cluster, config.initial_cluster_token)
        applied = _applied_index(backup.meta)
        conf = ConfState(voters=tuple(sorted(m.ID for m in founders)))
        puts = membership.table_records(founders)
        puts[snapshot_meta.LATEST] = SnapshotMeta(applied, RESTORED_TERM, conf).encode()
        puts[meta_key(META_APPLIED_INDEX)] = Backend.encode_int(applied)
        with db.write_batch(sync=True) as final:
            for key, value in puts.items():
                final.put(key, value)
    finally:
        db.close()


def _write_wal(path: str, identity: Identity, applied: int) -> None:
    """A WAL that starts at a snapshot of the restored state: nothing to replay after it."""
    wal = WAL.create(path, identity.to_bytes())
    try:
        wal.save_snapshot(SnapshotMarker(index=applied, term=RESTORED_TERM))
        wal.save([], HardState(RESTORED_TERM, 0, applied))
    finally:
        wal.close()
