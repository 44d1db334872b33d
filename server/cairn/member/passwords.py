"""Password hashing: bcrypt, as etcd stores them, at `--bcrypt-cost` (etcd's default 10).

A password is hashed by the member that receives it, before anything is proposed, so the
clear text never reaches the Raft log, the WAL or LevelDB (etcd 3.5 does the same; 3.4 still
hashed at apply time, with the password in its WAL). Hashing and checking take tens of
milliseconds on purpose; callers run them in a thread (bcrypt releases the GIL) so the event
loop keeps serving.
"""

from __future__ import annotations

import asyncio

import bcrypt

DEFAULT_BCRYPT_COST = 10
MIN_BCRYPT_COST = 4  # bcrypt's own bounds, which etcd's --bcrypt-cost has too
MAX_BCRYPT_COST = 31
# bcrypt reads at most this many bytes of a password; Go's bcrypt (etcd 3.4) ignores the
# rest, the Python binding refuses longer input, so cairn cuts as Go did.
_BCRYPT_MAX_BYTES = 72


def _bytes(password: str) -> bytes:
    return password.encode()[:_BCRYPT_MAX_BYTES]


def hash_password(password: str, cost: int) -> str:
    return bcrypt.hashpw(_bytes(password), bcrypt.gensalt(rounds=cost)).decode()


def password_matches(hashed: bytes, password: str) -> bool:
    if not hashed:
        return False
    try:
        return bcrypt.checkpw(_bytes(password), hashed)
    except ValueError:  # not a bcrypt hash at all
        return False


async def hash_in_thread(password: str, cost: int) -> str:
    return await asyncio.to_thread(hash_password, password, cost)


async def matches_in_thread(hashed: bytes, password: str) -> bool:
    return await asyncio.to_thread(password_matches, hashed, password)
