"""The auth store: users, roles, their permissions, whether auth is on, and the auth revision.

Replicated state, like the alarm table: every member applies the same Auth requests in log
order (`apply`), so all agree, and the records sit in LevelDB under the AUTH prefix, staged
into the same batch as the applied index, so restarts and snapshot images carry them. Every
successful change of users or roles, and disabling auth, moves the auth revision up by one
(it starts at 1), as etcd's does; enabling does not.

Passwords arrive here already hashed (the proposing member hashes them), and only the hash is
stored. Tokens are not replicated state but each member's own table (`SimpleTokens`), which
applying Authenticate, UserDelete, UserChangePassword and AuthDisable updates.

The checks (`check_admin`, `check_access`) answer with etcd's errors and follow etcd's order:
no user is `user name is empty`, an unknown user `permission denied` (`user name not found`
for admin calls), the root role may do anything.
"""

from __future__ import annotations

import bisect
import struct

from cairn.errors import (
    ErrAuthFailed,
    ErrAuthNotEnabled,
    ErrInvalidAuthMgmt,
    ErrPermissionDenied,
    ErrPermissionNotGiven,
    ErrPermissionNotGranted,
    ErrRoleAlreadyExist,
    ErrRoleEmpty,
    ErrRoleNotFound,
    ErrRoleNotGranted,
    ErrRootRoleNotExist,
    ErrRootUserNotExist,
    ErrUserAlreadyExist,
    ErrUserEmpty,
    ErrUserNotFound,
)
from cairn.member.auth_ranges import UserAccess
from cairn.member.auth_tokens import SimpleTokens, token_for
from cairn.mvcc.backend import AUTH
from cairn.mvcc.store import MVCCStore
from cairn.proto import rpc_pb2 as pb
from cairn.proto.auth_pb2 import Permission, Role, User
from cairn.proto.internal_pb2 import InternalAuthenticateRequest, InternalRequest

ROOT = "root"  # etcd's root user and root role names
_ENABLED = AUTH + b"e"
_REVISION = AUTH + b"v"
_USER = AUTH + b"U"
_ROLE = AUTH + b"R"
_U64 = struct.Struct(">Q")

# The InternalRequest kinds this store applies, and the ones only a root user may propose
# (UserGet and RoleGet are also open to a user asking about itself or one of its roles).
AUTH_KINDS = frozenset(
    {
        "auth_enable",
        "auth_disable",
        "authenticate",
        "auth_status",
        "auth_user_add",
        "auth_user_delete",
        "auth_user_get",
        "auth_user_change_password",
        "auth_user_grant_role",
        "auth_user_revoke_role",
        "auth_user_list",
        "auth_role_list",
        "auth_role_add",
        "auth_role_delete",
        "auth_role_get",
        "auth_role_grant_permission",
        "auth_role_revoke_permission",
    }
)
ADMIN_KINDS = AUTH_KINDS - {"authenticate", "auth_status", "auth_user_get", "auth_role_get"}

READ = Permission.READ
WRITE = Permission.WRITE


class AuthStore:
    """The replicated auth state of one member, and the permission checks on it."""

    def __init__(self, store: MVCCStore, tokens: SimpleTokens) -> None:
        self._store = store
        self.tokens = tokens
        backend = store.backend
        self.enabled = backend.get(_ENABLED) == b"\x01"
        raw = backend.get(_REVISION)
        self.revision = _U64.unpack(raw)[0] if raw is not None else 1
        self._users: dict[str, User] = {}
        self._roles: dict[str, Role] = {}
        for name, raw in backend.scan(_USER):
            self._users[name.decode()] = User.FromString(raw)
        for name, raw in backend.scan(_ROLE):
            self._roles[name.decode()] = Role.FromString(raw)
        self._access: dict[str, UserAccess] = {}

    # ---- reads used outside the log ---------------------------------------------------

    def user(self, name: str) -> User | None:
        return self._users.get(name)

    def is_root(self, name: str) -> bool:
        user = self._users.get(name)
        return user is not None and ROOT in user.roles

    def check_admin(self, username: str) -> None:
        """Auth management, membership changes and Hash/HashKV/Defragment need root."""
        if not self.enabled:
            return
        if not username:
            raise ErrUserEmpty()
        if username not in self._users:
            raise ErrUserNotFound()
        if not self.is_root(username):
            raise ErrPermissionDenied()

    def check_access(self, username: str, key: bytes, range_end: bytes, kind: int) -> None:
        """READ or WRITE on a key or range (the wire's key/range_end conventions)."""
        if not self.enabled:
            return
        if not username:
            raise ErrUserEmpty()
        user = self._users.get(username)
        if user is None:
            raise ErrPermissionDenied()
        if ROOT in user.roles:
            return
        access = self._access.get(username)
        if access is None:
            access = UserAccess.of(
                p for r in user.roles if r in self._roles for p in self._roles[r].keyPermission
            )
            self._access[username] = access
        coverage = access.read if kind == READ else access.write
        if not coverage.covers(key, range_end):
            raise ErrPermissionDenied()

    # ---- apply ------------------------------------------------------------------------

    def apply(self, request: InternalRequest, index: int) -> object:
        """Apply one committed Auth request (the caller checked who may send it)."""
        kind = request.WhichOneof("request")
        if kind == "authenticate":
            return self._authenticate(request.authenticate, index)
        if kind == "auth_status":
            return pb.AuthStatusResponse(enabled=self.enabled, authRevision=self.revision)
        handler = getattr(self, "_" + kind.removeprefix("auth_"))
        return handler(getattr(request, kind))

    def _enable(self, r: pb.AuthEnableRequest) -> pb.AuthEnableResponse:
        if not self.enabled:
            root = self._users.get(ROOT)
            if root is None:
                raise ErrRootUserNotExist()
            if ROOT not in root.roles:
                raise ErrRootRoleNotExist()
            self.enabled = True
            self._store.stage_raw(_ENABLED, b"\x01")
        return pb.AuthEnableResponse()

    def _disable(self, r: pb.AuthDisableRequest) -> pb.AuthDisableResponse:
        if self.enabled:
            self.enabled = False
            self._store.stage_raw(_ENABLED, b"\x00")
            self.tokens.clear()
            self._changed()
        return pb.AuthDisableResponse()

    def _authenticate(self, r: InternalAuthenticateRequest, index: int) -> pb.AuthenticateResponse:
        if not self.enabled:
            raise ErrAuthNotEnabled()
        if r.name not in self._users:
            raise ErrAuthFailed()
        token = token_for(r.simple_token, index)
        self.tokens.assign(token, r.name)
        return pb.AuthenticateResponse(token=token)

    def _user_add(self, r: pb.AuthUserAddRequest) -> pb.AuthUserAddResponse:
        if not r.name:
            raise ErrUserEmpty()
        if r.name in self._users:
            raise ErrUserAlreadyExist()
        user = User(name=r.name.encode(), password=r.hashedPassword.encode())
        if r.HasField("options"):
            user.options.CopyFrom(r.options)
        self._put_user(user)
        self._changed()
        return pb.AuthUserAddResponse()

    def _user_delete(self, r: pb.AuthUserDeleteRequest) -> pb.AuthUserDeleteResponse:
        if self.enabled and r.name == ROOT:
            raise ErrInvalidAuthMgmt()
        if r.name not in self._users:
            raise ErrUserNotFound()
        del self._users[r.name]
        self._store.stage_delete(_USER + r.name.encode())
        self.tokens.invalidate_user(r.name)
        self._changed()
        return pb.AuthUserDeleteResponse()

    def _user_change_password(
        self, r: pb.AuthUserChangePasswordRequest
    ) -> pb.AuthUserChangePasswordResponse:
        user = self._existing_user(r.name)
        user.password = r.hashedPassword.encode()
        self._put_user(user)
        self.tokens.invalidate_user(r.name)
        self._changed()
        return pb.AuthUserChangePasswordResponse()

    def _user_grant_role(self, r: pb.AuthUserGrantRoleRequest) -> pb.AuthUserGrantRoleResponse:
        user = self._existing_user(r.user)
        if r.role != ROOT and r.role not in self._roles:
            raise ErrRoleNotFound()  # the root role may be granted before it is added
        if r.role not in user.roles:
            roles = list(user.roles)
            bisect.insort(roles, r.role)
            del user.roles[:]
            user.roles.extend(roles)
            self._put_user(user)
            self._changed()
        return pb.AuthUserGrantRoleResponse()

    def _user_get(self, r: pb.AuthUserGetRequest) -> pb.AuthUserGetResponse:
        user = self._existing_user(r.name)
        return pb.AuthUserGetResponse(roles=list(user.roles))

    def _user_list(self, r: pb.AuthUserListRequest) -> pb.AuthUserListResponse:
        return pb.AuthUserListResponse(users=sorted(self._users))

    def _user_revoke_role(self, r: pb.AuthUserRevokeRoleRequest) -> pb.AuthUserRevokeRoleResponse:
        if self.enabled and r.name == ROOT and r.role == ROOT:
            raise ErrInvalidAuthMgmt()
        user = self._existing_user(r.name)
        if r.role not in user.roles:
            raise ErrRoleNotGranted()
        roles = [role for role in user.roles if role != r.role]
        del user.roles[:]
        user.roles.extend(roles)
        self._put_user(user)
        self._changed()
        return pb.AuthUserRevokeRoleResponse()

    def _role_add(self, r: pb.AuthRoleAddRequest) -> pb.AuthRoleAddResponse:
        if not r.name:
            raise ErrRoleEmpty()
        if r.name in self._roles:
            raise ErrRoleAlreadyExist()
        self._put_role(Role(name=r.name.encode()))
        self._changed()
        return pb.AuthRoleAddResponse()

    def _role_get(self, r: pb.AuthRoleGetRequest) -> pb.AuthRoleGetResponse:
        role = self._existing_role(r.role)
        return pb.AuthRoleGetResponse(perm=list(role.keyPermission))

    def _role_list(self, r: pb.AuthRoleListRequest) -> pb.AuthRoleListResponse:
        return pb.AuthRoleListResponse(roles=sorted(self._roles))

    def _role_delete(self, r: pb.AuthRoleDeleteRequest) -> pb.AuthRoleDeleteResponse:
        if self.enabled and r.role == ROOT:
            raise ErrInvalidAuthMgmt()
        self._existing_role(r.role)
        del self._roles[r.role]
        self._store.stage_delete(_ROLE + r.role.encode())
        for user in self._users.values():
            if r.role in user.roles:
                roles = [role for role in user.roles if role != r.role]
                del user.roles[:]
                user.roles.extend(roles)
                self._put_user(user)
        self._changed()
        return pb.AuthRoleDeleteResponse()

    def _role_grant_permission(
        self, r: pb.AuthRoleGrantPermissionRequest
    ) -> pb.AuthRoleGrantPermissionResponse:
        role = self._existing_role(r.name)
        if not r.HasField("perm"):
            raise ErrPermissionNotGiven()
        perms = list(role.keyPermission)
        same = next(
            (p for p in perms if p.key == r.perm.key and p.range_end == r.perm.range_end), None
        )
        if same is not None:
            same.permType = r.perm.permType
        else:
            # Kept sorted by key, a new one before the first with an equal key (etcd's order).
            at = bisect.bisect_left([p.key for p in perms], r.perm.key)
            perms.insert(at, r.perm)
        del role.keyPermission[:]
        role.keyPermission.extend(perms)
        self._put_role(role)
        self._changed()
        return pb.AuthRoleGrantPermissionResponse()

    def _role_revoke_permission(
        self, r: pb.AuthRoleRevokePermissionRequest
    ) -> pb.AuthRoleRevokePermissionResponse:
        role = self._existing_role(r.role)
        kept = [p for p in role.keyPermission if (p.key, p.range_end) != (r.key, r.range_end)]
        if len(kept) == len(role.keyPermission):
            raise ErrPermissionNotGranted()
        del role.keyPermission[:]
        role.keyPermission.extend(kept)
        self._put_role(role)
        self._changed()
        return pb.AuthRoleRevokePermissionResponse()

    # ---- the pieces -------------------------------------------------------------------

    def _existing_user(self, name: str) -> User:
        user = self._users.get(name)
        if user is None:
            raise ErrUserNotFound()
        return user

    def _existing_role(self, name: str) -> Role:
        role = self._roles.get(name)
        if role is None:
            raise ErrRoleNotFound()
        return role

    def _put_user(self, user: User) -> None:
        name = user.name.decode()
        self._users[name] = user
        self._store.stage_raw(_USER + user.name, user.SerializeToString())

    def _put_role(self, role: Role) -> None:
        self._roles[role.name.decode()] = role
        self._store.stage_raw(_ROLE + role.name, role.SerializeToString())

    def _changed(self) -> None:
        """A user or role changed (or auth was disabled): a new auth revision."""
        self.revision += 1
        self._store.stage_raw(_REVISION, _U64.pack(self.revision))
        self._access.clear()
