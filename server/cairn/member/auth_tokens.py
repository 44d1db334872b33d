"""Simple tokens (`--auth-token simple`, etcd's default): random strings that stand for a
user, each member's own table, forgotten after `--auth-token-ttl` seconds without use.

Authenticate is proposed through Raft with the token's random part, and every member adds
"<random>.<raft index>" to its table when it applies the entry, so a token issued by one member
is accepted by all. A member that has not applied that index yet waits for it (the index in
the token says how far), as etcd's does. Tokens live in memory only: a restarted member knows
none (clients authenticate again on `invalid auth token`), as with etcd.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable

DEFAULT_TOKEN_TTL_S = 300  # etcd's --auth-token-ttl default
TOKEN_RANDOM_LENGTH = 16  # etcd's simple token: 16 ASCII letters, then ".<index>"
_LETTERS = string.ascii_letters


def random_token_part() -> str:
    return "".join(secrets.choice(_LETTERS) for _ in range(TOKEN_RANDOM_LENGTH))


def token_for(random_part: str, index: int) -> str:
    return f"{random_part}.{index}"


def token_index(token: str) -> int | None:
    """The Raft index a well-formed simple token names, None for anything else."""
    parts = token.split(".")
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    return int(parts[1])


class SimpleTokens:
    """token -> user, with an inactivity deadline per token on this member's clock."""

    def __init__(
        self, ttl_s: float = DEFAULT_TOKEN_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._users: dict[str, str] = {}
        self._deadlines: dict[str, float] = {}

    def __len__(self) -> int:
        self._drop_expired()
        return len(self._users)

    def assign(self, token: str, user: str) -> None:
        self._drop_expired()
        self._users[token] = user
        self._deadlines[token] = self._clock() + self.ttl_s

    def user_of(self, token: str) -> str | None:
        """The user a live token stands for; using it restarts its TTL (etcd's keeper does)."""
        user = self._users.get(token)
        if user is None:
            return None
        now = self._clock()
        if self._deadlines[token] <= now:
            self._forget(token)
            return None
        self._deadlines[token] = now + self.ttl_s
        return user

    def invalidate_user(self, user: str) -> None:
        """A deleted user, or one whose password changed, loses every token it held."""
        for token in [t for t, u in self._users.items() if u == user]:
            self._forget(token)

    def clear(self) -> None:
        """Auth was disabled: every token is void (a later enable starts from none)."""
        self._users.clear()
        self._deadlines.clear()

    def _drop_expired(self) -> None:
        now = self._clock()
        for token in [t for t, d in self._deadlines.items() if d <= now]:
            self._forget(token)

    def _forget(self, token: str) -> None:
        self._users.pop(token, None)
        self._deadlines.pop(token, None)
