"""Auth checks that belong to whole RPCs rather than to the keys they touch, added around a
service object's methods (so the services themselves stay about their own job).

What etcd 3.4.23 requires, checked with etcdctl and gRPC:

- Cluster MemberAdd, MemberRemove, MemberUpdate, MemberPromote: root (`etcdserver: user name
  is empty` / `permission denied`); MemberList: nobody.
- Maintenance Hash, HashKV, Defragment, Snapshot: root, with the auth package's unmapped
  errors (code Unknown, `auth: permission denied`, `auth: user name is empty`, `auth: invalid
  auth token`); Alarm: anyone, but an unknown token fails (`auth: invalid auth token`);
  Status and MoveLeader: nobody is checked.
- Lock and Election: whatever their key effects need; the caller is resolved first and
  carried to them (`auth_identity.CALLER`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from cairn.api.auth_identity import Authenticator
from cairn.errors import EtcdError, unmapped_auth_error

ErrorMapper = Callable[[EtcdError], EtcdError]


def _same(error: EtcdError) -> EtcdError:
    return error


class _Checked:
    """`service` with some methods preceded by `check(context)`; the rest pass through."""

    def __init__(self, service: object) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)


def checked(
    service: object,
    methods: Iterable[str],
    check: Callable[[Any], Any],
    map_error: ErrorMapper = _same,
) -> object:
    """Wrap `methods` of `service` so that `await check(context)` runs first; an EtcdError it
    raises is answered through `map_error`."""
    proxy = _Checked(service)
    for name in methods:
        original = getattr(service, name, None)
        if original is None:
            continue  # not built (yet): the server answers UNIMPLEMENTED
        setattr(proxy, name, _wrap(original, check, map_error))
    return proxy


def _wrap(original: Any, check: Callable[[Any], Any], map_error: ErrorMapper) -> Any:
    async def run_check(context: Any) -> None:
        try:
            await check(context)
        except EtcdError as error:
            raise map_error(error) from None

    if inspect.isasyncgenfunction(original):

        async def stream(request: Any, context: Any) -> Any:
            await run_check(context)
            async for response in original(request, context):
                yield response

        return stream

    async def unary(request: Any, context: Any) -> Any:
        await run_check(context)
        return await original(request, context)

    return unary


def admin_check(authenticator: Authenticator) -> Callable[[Any], Any]:
    async def check(context: Any) -> None:
        caller = await authenticator.caller(context)
        authenticator.store.check_admin(caller.username)

    return check


def resolve_only(authenticator: Authenticator) -> Callable[[Any], Any]:
    async def check(context: Any) -> None:
        await authenticator.caller(context)

    return check


MEMBERSHIP_CHANGES = ("MemberAdd", "MemberRemove", "MemberUpdate", "MemberPromote")
MAINTENANCE_ADMIN = ("Hash", "HashKV", "Defragment", "Snapshot")


def guard_cluster(service: object, authenticator: Authenticator) -> object:
    return checked(service, MEMBERSHIP_CHANGES, admin_check(authenticator))


def guard_maintenance(service: object, authenticator: Authenticator) -> object:
    admin = checked(service, MAINTENANCE_ADMIN, admin_check(authenticator), unmapped_auth_error)
    return checked(admin, ("Alarm",), resolve_only(authenticator), unmapped_auth_error)


def with_caller(
    service: object, methods: Iterable[str], authenticator: Authenticator, map_error: ErrorMapper
) -> object:
    """Lock and Election: resolve the caller and carry it to the key effects."""
    return checked(service, methods, authenticator.enter, map_error)
