"""Encryption at rest on a running member: key file reloads and background re-encryption.

The member seals with the keyring loaded from `--encryption-key-file` at start. This module
keeps that keyring in step with the file while the member serves:

- **Reload**: the file is polled (and re-read at once on SIGHUP, see `cairn serve`). A file
  that does not parse, or that drops a key some stored record may still be sealed with,
  is refused with an error line and the keys in use stay; otherwise the new keys take
  effect at once, for the WAL and LevelDB together.
- **Re-encryption**: whenever the active key is not the only key the data dir may hold (a
  rotation, encryption turned on for a plaintext data dir, or turned off with `active:
  plaintext`), a pass re-seals LevelDB's history records in bounded batches that yield to
  the event loop, then defragments (LevelDB would keep the overwritten copies in its table
  files), then makes a fresh Raft snapshot, so the snapshot image is re-read from the
  re-sealed records and the WAL releases the segments with entries sealed by older keys.
  After that the older keys are no longer needed: the pass logs so and the file may drop
  them. A restart simply runs the pass again (records already under the active key are
  read, not rewritten).

`progress()` is what an operator (and the metrics endpoint) can watch: records still to be
re-sealed, records re-sealed so far, whether the WAL still holds older keys, and whether the
data dir is entirely under the active key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cairn.mvcc.backend import Backend
from cairn.sealing import PLAINTEXT, KeyFileError, Keyring, load_key_file

log = logging.getLogger("cairn.encryption")

BATCH_RECORDS = 500  # records read (and at most re-sealed) per step on the event loop
PAUSE_S = 0.005  # between two steps: the pass takes a bounded share of the loop
POLL_S = 1.0  # how often the key file's stat is compared
WAL_CHECK_S = 0.5  # how often the pass re-checks the WAL segments after its snapshot
PROGRESS_LOG_S = 5.0
RETRY_S = 5.0  # after a pass failed (say, the member swapped its database under it)


class EncryptionHost(Protocol):
    """What the pass needs from the member (the member implements it)."""

    @property
    def backend(self) -> Backend: ...

    def wal_key_ids(self) -> set[str | None]: ...

    def rekey_wal(self, switch: Callable[[], None]) -> None: ...

    def refresh_after_reencryption(self) -> None: ...

    async def defragment(self) -> None: ...


@dataclass(frozen=True)
class ReencryptionProgress:
    """A point-in-time view of re-encryption (cairn_encryption_* metrics come from it)."""

    active_key: str  # "plaintext" when new records are stored in clear
    records_remaining: int  # history records under another key; -1 while still counting
    records_resealed: int  # re-sealed since the member started
    wal_holds_other_keys: bool
    complete: bool  # every record and WAL entry on disk is under the active key


def _label(key_id: str | None) -> str:
    return PLAINTEXT if key_id is None else key_id


class Encryption:
    """Keeps one member's keyring in step with its key file and its data under the active key."""

    def __init__(self, key_file: str, keyring: Keyring, host: EncryptionHost) -> None:
        self.key_file = key_file
        self.keyring = keyring
        self._host = host
        self._restart = asyncio.Event()
        self._stat = _stat(key_file)
        # Key ids some record on disk may be sealed with (None: in clear); conservative until
        # a pass completes, so a reload can never drop a key that is still needed.
        self._in_use: set[str | None] = {None, *keyring.key_ids}
        self._pending: Counter[str | None] | None = None  # None while counting
        self._resealed = 0
        self._complete = False

    # ---- observation -------------------------------------------------------------------

    def progress(self) -> ReencryptionProgress:
        active = self.keyring.active
        pending = self._pending
        remaining = -1 if pending is None else sum(pending.values())
        wal_other = bool(self._host.wal_key_ids() - {active})
        return ReencryptionProgress(
            _label(active), remaining, self._resealed, wal_other, self._complete
        )

    def keys_in_use(self) -> set[str]:
        """Key ids the key file must keep for now."""
        return {k for k in self._in_use | self._host.wal_key_ids() if k is not None}

    # ---- reload ------------------------------------------------------------------------

    def reload(self, reason: str) -> bool:
        """Re-read the key file; True if new keys took effect."""
        self._stat = _stat(self.key_file)
        try:
            loaded = load_key_file(self.key_file)
        except KeyFileError as error:
            log.error("%s: keeping the keys in use: %s", reason, error)
            return False
        if loaded.same_as(self.keyring):
            log.info("%s: %s unchanged", reason, self.key_file)
            return False
        missing = self.keys_in_use() - loaded.key_ids
        if missing:
            log.error(
                "%s: %s drops key(s) %s, which records in the data dir may still be sealed "
                "with (re-encryption has not completed); keeping the keys in use",
                reason,
                self.key_file,
                ", ".join(sorted(missing)),
            )
            return False
        before = self.keyring.active
        if loaded.active != before:
            self._host.rekey_wal(lambda: self.keyring.replace(loaded))
        else:
            self.keyring.replace(loaded)
        self._in_use.add(loaded.active)
        self._complete = False
        self._pending = None  # counted again by the next pass
        self._restart.set()
        log.info(
            "%s: encryption keys reloaded from %s: active key %s (was %s), keys %s",
            reason,
            self.key_file,
            _label(loaded.active),
            _label(before),
            ", ".join(sorted(loaded.key_ids)) or "none",
        )
        return True

    def data_replaced(self) -> None:
        """The member swapped in a received image: check it from the start.

        Its records were sealed while it arrived, perhaps partly under a key that was active
        before a rotation, so every key in the file counts as in use until a pass says not.
        """
        self._in_use |= self.keyring.key_ids
        self._complete = False
        self._pending = None
        self._restart.set()

    async def watch_file(self) -> None:
        """Reload when the key file's inode, size or modification time changes."""
        while True:
            await asyncio.sleep(POLL_S)
            if _stat(self.key_file) != self._stat:
                self.reload("key file changed")

    # ---- the pass ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run a pass at start and again after every reload that changed the keys."""
        while True:
            self._restart.clear()
            try:
                await self._pass()
            except _Restarted:
                continue
            except Exception:
                # The pass must not die silently (old keys would look needed forever, which
                # is safe but never ends): say why and try again.
                log.exception("re-encryption pass failed; retrying in %.0f s", RETRY_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._restart.wait(), RETRY_S)
                continue
            await self._restart.wait()

    def _check_restart(self) -> None:
        if self._restart.is_set():
            raise _Restarted()

    async def _pass(self) -> None:
        active = self.keyring.active
        self._complete = False
        self._pending = None
        counts: Counter[str | None] = Counter()
        cursor: bytes | None = b""
        while cursor is not None:
            self._check_restart()
            cursor, found = self._host.backend.survey(cursor, BATCH_RECORDS)
            counts.update(found)
            await asyncio.sleep(0)
        pending = Counter({k: n for k, n in counts.items() if k != active and n})
        self._pending = pending
        other_wal = self._host.wal_key_ids() - {active}
        if not pending and not other_wal and self._in_use <= {None, active}:
            self._complete = True
            return
        if other_wal:
            # The live segment may hold entries of another key: start a new one, so the
            # snapshot at the end of the pass can release every segment before it.
            self._host.rekey_wal(lambda: None)
        total = sum(pending.values())
        log.info(
            "re-encryption to key %s: %d history records to re-seal (%s)",
            _label(active),
            total,
            ", ".join(f"{_label(k)}: {n}" for k, n in sorted(pending.items(), key=str)) or "none",
        )
        loop = asyncio.get_running_loop()
        logged = loop.time()
        cursor = b""
        while cursor is not None:
            self._check_restart()
            cursor, rewritten = self._host.backend.reseal(cursor, BATCH_RECORDS)
            for key_id, n in rewritten.items():
                pending[key_id] = max(0, pending[key_id] - n)
                self._resealed += n
            if loop.time() - logged >= PROGRESS_LOG_S:
                logged = loop.time()
                log.info(
                    "re-encryption to key %s: %d records re-sealed, %d remaining",
                    _label(active),
                    self._resealed,
                    sum(pending.values()),
                )
            await asyncio.sleep(PAUSE_S)
        self._host.backend.sync_barrier()  # re-sealed records durable before old keys go
        if total:
            # LevelDB keeps the overwritten copies (in clear or under the older key) in its
            # table files until it happens to compact them, possibly never: a copy of the
            # live records into a fresh database (Defragment) leaves none behind.
            log.info(
                "re-encryption to key %s: %d records re-sealed; defragmenting to drop the "
                "stale copies LevelDB keeps",
                _label(active),
                total,
            )
            await self._host.defragment()
        self._pending = Counter()
        while True:
            self._check_restart()
            self._host.refresh_after_reencryption()
            if not self._host.wal_key_ids() - {active}:
                break
            await asyncio.sleep(WAL_CHECK_S)
        released = sorted(k for k in self._in_use - {active} if k is not None)
        self._in_use = {active}
        self._complete = True
        log.info(
            "re-encryption to key %s complete: %d records re-sealed; no record or WAL entry "
            "on disk needs any other key (%s may leave the key file)",
            _label(active),
            self._resealed,
            ", ".join(released) or "none",
        )


class _Restarted(Exception):
    """The keys changed during a pass: start over with the new active key."""


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
