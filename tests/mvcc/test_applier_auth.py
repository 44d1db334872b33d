"""Auth as replicated state: applied from log entries, checked at apply, kept in LevelDB.

Driven through the Applier on a real LevelDB (the MVCC harness), with requests built as the
API layer proposes them (user name and auth revision in the header, passwords hashed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.mvcc.harness import KV

from cairn.errors import (
    ErrAuthOldRevision,
    ErrInvalidAuthMgmt,
    ErrPermissionDenied,
    ErrRootRoleNotExist,
    ErrRootUserNotExist,
    ErrUserEmpty,
)
from cairn.member.applier import Applied
from cairn.member.auth_tokens import SimpleTokens
from cairn.member.passwords import hash_password, password_matches
from cairn.proto import rpc_pb2 as pb
from cairn.proto.auth_pb2 import Permission
from cairn.proto.internal_pb2 import InternalAuthenticateRequest, InternalRequest


def apply(kv: KV, user: str = "", revision: int = 0, **fields: Any) -> Applied:
    request = InternalRequest(**fields)
    request.header.username = user
    request.header.auth_revision = revision
    return kv._apply(lambda: kv.applier.apply(request, kv.applied_index))


def as_root(kv: KV, **fields: Any) -> Applied:
    return apply(kv, "root", kv.applier.auth.revision, **fields)


def enable_with_alice(kv: KV) -> None:
    """root (root role), alice with READWRITE on the prefix app/, auth enabled."""
    apply(kv, auth_user_add=pb.AuthUserAddRequest(name="root", hashedPassword="h"))
    apply(kv, auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="root", role="root"))
    apply(kv, auth_user_add=pb.AuthUserAddRequest(name="alice", hashedPassword="h"))
    apply(kv, auth_role_add=pb.AuthRoleAddRequest(name="app"))
    perm = Permission(permType=Permission.READWRITE, key=b"app/", range_end=b"app0")
    apply(kv, auth_role_grant_permission=pb.AuthRoleGrantPermissionRequest(name="app", perm=perm))
    apply(kv, auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="alice", role="app"))
    apply(kv, auth_enable=pb.AuthEnableRequest())


def as_alice(kv: KV, **fields: Any) -> Applied:
    return apply(kv, "alice", kv.applier.auth.revision, **fields)


def test_enable_needs_a_root_user_holding_the_root_role(kv: KV) -> None:
    with pytest.raises(ErrRootUserNotExist):
        apply(kv, auth_enable=pb.AuthEnableRequest())
    apply(kv, auth_user_add=pb.AuthUserAddRequest(name="root", hashedPassword="h"))
    with pytest.raises(ErrRootRoleNotExist):
        apply(kv, auth_enable=pb.AuthEnableRequest())
    assert not kv.applier.auth.enabled


def test_users_roles_and_the_enabled_flag_survive_a_restart(kv: KV) -> None:
    enable_with_alice(kv)
    revision = kv.applier.auth.revision
    kv.restart()
    auth = kv.applier.auth
    assert auth.enabled and auth.revision == revision
    listed = as_root(kv, auth_user_list=pb.AuthUserListRequest()).response
    assert list(listed.users) == ["alice", "root"]  # type: ignore[attr-defined]
    assert as_alice(kv, put=pb.PutRequest(key=b"app/x", value=b"v")).changes is not None


def test_every_change_moves_the_auth_revision_and_enabling_does_not(kv: KV) -> None:
    assert kv.applier.auth.revision == 1
    apply(kv, auth_user_add=pb.AuthUserAddRequest(name="root", hashedPassword="h"))
    apply(kv, auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="root", role="root"))
    assert kv.applier.auth.revision == 3
    apply(kv, auth_enable=pb.AuthEnableRequest())
    assert kv.applier.auth.revision == 3
    as_root(kv, auth_disable=pb.AuthDisableRequest())
    assert kv.applier.auth.revision == 4


def test_writes_are_checked_when_applied_and_refused_whole(kv: KV) -> None:
    enable_with_alice(kv)
    as_alice(kv, put=pb.PutRequest(key=b"app/a", value=b"1"))
    with pytest.raises(ErrPermissionDenied):
        as_alice(kv, put=pb.PutRequest(key=b"other", value=b"1"))
    with pytest.raises(ErrUserEmpty):
        apply(kv, put=pb.PutRequest(key=b"app/b", value=b"1"))
    nested = pb.TxnRequest(
        success=[
            pb.RequestOp(request_put=pb.PutRequest(key=b"app/c", value=b"1")),
            pb.RequestOp(
                request_txn=pb.TxnRequest(
                    success=[pb.RequestOp(request_put=pb.PutRequest(key=b"other", value=b"2"))]
                )
            ),
        ]
    )
    with pytest.raises(ErrPermissionDenied):
        as_alice(kv, txn=nested)  # the nested txn's put is checked too
    assert kv.get(b"app/c").count == 0
    assert kv.get(b"other").count == 0


def test_a_write_proposed_before_a_permission_change_is_refused_as_stale(kv: KV) -> None:
    enable_with_alice(kv)
    proposed_at = kv.applier.auth.revision
    as_root(kv, auth_role_add=pb.AuthRoleAddRequest(name="unrelated"))
    with pytest.raises(ErrAuthOldRevision):
        apply(kv, "alice", proposed_at, put=pb.PutRequest(key=b"app/a", value=b"1"))


def test_the_members_own_lease_expiry_is_never_refused(kv: KV) -> None:
    enable_with_alice(kv)
    as_root(kv, lease_grant=pb.LeaseGrantRequest(ID=7, TTL=10))
    as_root(kv, put=pb.PutRequest(key=b"secret", value=b"v", lease=7))
    with pytest.raises(ErrPermissionDenied):
        as_alice(kv, lease_revoke=pb.LeaseRevokeRequest(ID=7))  # WRITE on the attached key
    expiry = InternalRequest(lease_revoke=pb.LeaseRevokeRequest(ID=7))
    expiry.header.internal = True
    kv._apply(lambda: kv.applier.apply(expiry, kv.applied_index))
    assert kv.get(b"secret").count == 0


def test_root_may_not_be_deleted_or_lose_its_role_while_auth_is_enabled(kv: KV) -> None:
    enable_with_alice(kv)
    for fields in (
        {"auth_user_delete": pb.AuthUserDeleteRequest(name="root")},
        {"auth_role_delete": pb.AuthRoleDeleteRequest(role="root")},
        {"auth_user_revoke_role": pb.AuthUserRevokeRoleRequest(name="root", role="root")},
    ):
        with pytest.raises(ErrInvalidAuthMgmt):
            as_root(kv, **fields)


def test_authenticate_assigns_the_token_on_apply_and_deleting_the_user_voids_it(
    tmp_path: Path,
) -> None:
    tokens = SimpleTokens(300)
    kv = KV(tmp_path / "db")
    try:
        kv.applier = type(kv.applier)(kv.store, tokens)
        enable_with_alice(kv)
        request = InternalAuthenticateRequest(name="alice", simple_token="abcdefghijklmnop")
        token = apply(kv, authenticate=request).response.token  # type: ignore[attr-defined]
        assert token == f"abcdefghijklmnop.{kv.applied_index}"
        assert tokens.user_of(token) == "alice"
        as_root(kv, auth_user_delete=pb.AuthUserDeleteRequest(name="alice"))
        assert tokens.user_of(token) is None
    finally:
        kv.close()


def test_tokens_expire_after_their_ttl_without_use_and_use_extends_them() -> None:
    now = [0.0]
    tokens = SimpleTokens(5, clock=lambda: now[0])
    tokens.assign("t.1", "alice")
    now[0] = 4.0
    assert tokens.user_of("t.1") == "alice"
    now[0] = 8.0
    assert tokens.user_of("t.1") == "alice"
    now[0] = 13.5
    assert tokens.user_of("t.1") is None


def test_stored_passwords_are_bcrypt_hashes_that_check_the_password() -> None:
    hashed = hash_password("s3cret", 4)
    assert hashed.startswith("$2b$04$") and "s3cret" not in hashed
    assert password_matches(hashed.encode(), "s3cret")
    assert not password_matches(hashed.encode(), "other")
    assert not password_matches(b"", "")


def test_auth_status_tells_whether_auth_is_on_and_the_auth_revision(kv: KV) -> None:
    status = apply(kv, auth_status=pb.AuthStatusRequest()).response
    assert (status.enabled, status.authRevision) == (False, 1)  # type: ignore[attr-defined]
    enable_with_alice(kv)
    status = as_alice(kv, auth_status=pb.AuthStatusRequest()).response
    assert (status.enabled, status.authRevision) == (True, 7)  # type: ignore[attr-defined]
