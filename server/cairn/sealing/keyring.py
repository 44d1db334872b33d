"""The keys one member seals and opens records with, and which of them is active.

One Keyring object is shared by the WAL (its writer thread seals entries) and the LevelDB
backend; a reloaded key file replaces its contents in one assignment, so a reader in either
thread sees the old set or the new one, never half of each.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cairn.sealing import envelope

PLAINTEXT = "plaintext"
"""The reserved `active:` value: store new records in clear (the path to turn sealing off)."""


@dataclass(frozen=True)
class _State:
    active: str | None  # None: new records are written in clear
    head: bytes  # the envelope header of the active key
    aeads: dict[str, AESGCM]
    secrets: dict[str, bytes]


def _state(active: str | None, secrets: dict[str, bytes]) -> _State:
    if active is not None and active not in secrets:
        raise ValueError(f"active key {active!r} is not among the keys")
    aeads = {key_id: AESGCM(secret) for key_id, secret in secrets.items()}
    head = envelope.header(active) if active is not None else b""
    return _State(active, head, aeads, dict(secrets))


class Keyring:
    """Key id -> AES key, plus the active id that new records are sealed with."""

    def __init__(self, active: str | None = None, secrets: dict[str, bytes] | None = None):
        self._state = _state(active, secrets or {})

    @classmethod
    def empty(cls) -> Keyring:
        """No keys: records are written in clear and a sealed record cannot be opened."""
        return cls()

    @property
    def active(self) -> str | None:
        """The id new records are sealed with; None when they are written in clear."""
        return self._state.active

    @property
    def key_ids(self) -> set[str]:
        return set(self._state.aeads)

    def same_as(self, other: Keyring) -> bool:
        return (self._state.active, self._state.secrets) == (
            other._state.active,
            other._state.secrets,
        )

    def replace(self, other: Keyring) -> None:
        """Take over `other`'s keys and active id (one assignment: atomic for readers)."""
        self._state = other._state

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """`plaintext` sealed with the active key; unchanged when there is no active key."""
        state = self._state
        if state.active is None:
            return plaintext
        return envelope.seal(state.aeads[state.active], state.head, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """The plaintext of a sealed record (UnknownKeyError, TamperedRecordError)."""
        return envelope.open_sealed(self._state.aeads, sealed, context)
