"""Key files and keyrings for the encryption tests."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

from cairn.sealing import Keyring


def secret() -> bytes:
    return os.urandom(32)


def keyring(active: str | None, *ids: str) -> Keyring:
    return Keyring(active, {key_id: secret() for key_id in ids})


def write_key_file(path: Path, active: str, keys: dict[str, bytes]) -> Path:
    """Write a key file (mode 0600) with `keys` (id -> raw secret) and `active`."""
    document = {
        "active": active,
        "keys": [{"id": k, "secret": base64.b64encode(v).decode()} for k, v in keys.items()],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
