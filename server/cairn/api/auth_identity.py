"""Who is calling: the user behind a request's token, or its client certificate's CN.

As etcd resolves it: a `token` in the request metadata (what clients send after
Authenticate) names the user; a token this member does not know is `invalid auth token`,
after waiting until the member has applied the index the token names (a token issued through
another member reaches this one through the log). Without a token, and only with
`--client-cert-auth`, the common name of the verified client certificate is the user. No
token and no certificate is no user at all (etcd then answers `user name is empty`).

While auth is disabled nobody is resolved and every check passes.

Lock and Election run their KV effects inside the member; `CALLER` carries the caller's
identity to them (a context variable, so the clean-up tasks a call leaves behind keep it).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from cairn.errors import ErrInvalidAuthToken, ErrTimeout
from cairn.member.auth_store import AuthStore
from cairn.member.auth_tokens import token_index
from cairn.member.raft_member import RaftMember
from cairn.proto.internal_pb2 import RequestHeader

TOKEN_METADATA = "token"  # clientv3's metadata key for the token
_SWAGGER_METADATA = "authorization"  # the grpc-gateway's, which etcd accepts too


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated user and the auth revision it was resolved at ("" and 0: nobody)."""

    username: str = ""
    revision: int = 0

    def stamp(self, header: RequestHeader) -> None:
        """Carry the caller into a proposal, for the apply-time check."""
        header.username = self.username
        header.auth_revision = self.revision


NOBODY = Caller()
CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("cairn_caller", default=NOBODY)


def _metadata(context: Any, key: str) -> str | None:
    read = getattr(context, "invocation_metadata", None)
    for k, v in (read() if read is not None else None) or ():
        if k == key:
            return str(v)
    return None


def _common_name(context: Any) -> str:
    read = getattr(context, "auth_context", None)
    names = (read() if read is not None else {}).get("x509_common_name") or []
    return names[0].decode() if names else ""


class Authenticator:
    """Resolves callers for the services of one member."""

    def __init__(self, member: RaftMember, client_cert_auth: bool = False) -> None:
        self._member = member
        self.client_cert_auth = client_cert_auth

    @property
    def store(self) -> AuthStore:
        """The member's auth store now (a swapped-in image replaces it)."""
        return self._member.applier.auth

    @property
    def enabled(self) -> bool:
        return self.store.enabled

    async def caller(self, context: Any) -> Caller:
        """The caller of a request; raises ErrInvalidAuthToken for an unknown token."""
        auth = self._member.applier.auth
        if not auth.enabled:
            return NOBODY
        token = _metadata(context, TOKEN_METADATA) or _metadata(context, _SWAGGER_METADATA)
        if token:
            user = await self._user_of(token)
            if user is None:
                raise ErrInvalidAuthToken()
            return Caller(user, self._member.applier.auth.revision)
        if self.client_cert_auth:
            name = _common_name(context)
            if name:
                return Caller(name, auth.revision)
        return NOBODY

    async def _user_of(self, token: str) -> str | None:
        member = self._member
        user = member.tokens.user_of(token)
        if user is not None:
            return user
        index = token_index(token)
        if index is None or index <= member.store.applied_index:
            return None
        try:
            await member.wait_applied(index)
        except ErrTimeout:
            return None
        return member.tokens.user_of(token)

    async def enter(self, context: Any) -> Caller:
        """Resolve the caller and make it the one Lock/Election effects run as."""
        caller = await self.caller(context)
        CALLER.set(caller)
        return caller
