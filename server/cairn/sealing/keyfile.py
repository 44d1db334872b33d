"""`--encryption-key-file`: the YAML file that lists a member's keys and names the active one.

    active: key-2026-11          # new records are sealed with this key ("plaintext": in clear)
    keys:
      - id: key-2026-11          # 1..64 of A-Z a-z 0-9 . _ -  ("plaintext" is reserved)
        secret: 3q2+7w...        # base64 of 16, 24 or 32 random bytes (AES-128/192/256)
      - id: key-2026-05          # older keys stay until re-encryption no longer needs them
        secret: q83vEj...

Rotation: add a key, make it `active`, and the member picks the file up (it polls the file,
or at once on SIGHUP); a background pass re-seals older records with it. The member refuses a
reloaded file that drops a key still sealing records and keeps the keys it had.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import stat

import yaml

from cairn.sealing.keyring import PLAINTEXT, Keyring

log = logging.getLogger("cairn.sealing")

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KEY_SIZES = (16, 24, 32)


class KeyFileError(Exception):
    """The key file is missing, unreadable or malformed; the message names what to fix."""


def load_key_file(path: str) -> Keyring:
    """Read and check the key file at `path` (see the module docstring for its format)."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read()
    except OSError as error:
        raise KeyFileError(f"--encryption-key-file {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "--encryption-key-file %s is accessible by group or others (mode %o); "
            "make it 0600 (or 0400)",
            path,
            stat.S_IMODE(mode),
        )
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise KeyFileError(f"--encryption-key-file {path}: not valid YAML: {error}") from None
    return parse_key_file(loaded, path)


def parse_key_file(loaded: object, path: str) -> Keyring:
    """A Keyring from the parsed YAML document."""

    def fail(problem: str) -> KeyFileError:
        return KeyFileError(f"--encryption-key-file {path}: {problem}")

    if not isinstance(loaded, dict):
        raise fail("expected a mapping with 'active' and 'keys'")
    unknown = set(loaded) - {"active", "keys"}
    if unknown:
        raise fail(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    keys = loaded.get("keys") or []
    if not isinstance(keys, list):
        raise fail("'keys' must be a list of {id, secret}")
    secrets: dict[str, bytes] = {}
    for number, entry in enumerate(keys, 1):
        if not isinstance(entry, dict) or set(entry) != {"id", "secret"}:
            raise fail(f"key #{number} must have exactly the fields 'id' and 'secret'")
        key_id, secret = entry["id"], entry["secret"]
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise fail(f"key #{number}: id {key_id!r} must be 1..64 of A-Z a-z 0-9 . _ -")
        if key_id == PLAINTEXT:
            raise fail(f"key #{number}: the id {PLAINTEXT!r} is reserved")
        if key_id in secrets:
            raise fail(f"key id {key_id!r} appears twice")
        try:
            raw = base64.b64decode(str(secret), validate=True)
        except (binascii.Error, ValueError):
            raise fail(f"key {key_id!r}: secret is not base64") from None
        if len(raw) not in _KEY_SIZES:
            raise fail(f"key {key_id!r}: secret is {len(raw)} bytes, want 16, 24 or 32")
        secrets[key_id] = raw
    active = loaded.get("active")
    if not isinstance(active, str) or not active:
        raise fail(f"'active' must name one of the keys (or be {PLAINTEXT!r})")
    if active != PLAINTEXT and active not in secrets:
        raise fail(f"active key {active!r} is not among the keys")
    return Keyring(None if active == PLAINTEXT else active, secrets)
