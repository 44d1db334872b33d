"""The etcdserverpb.Auth service: users, roles, permissions, enabling auth, Authenticate.

Every call goes through the log, as in etcd, so every member applies the same change and a
read (UserGet, RoleList, ...) sees every change acknowledged before it. Who may make a call
is decided when it is applied (`cairn.member.auth_checks`): root for management, anyone for
Authenticate. Passwords are hashed here, before proposing (`--bcrypt-cost`), so only hashes
reach the log; Authenticate checks the password here and proposes only the user name and the
token's random part, then retries when the auth revision moved meanwhile (the password it
checked may have changed), as etcd does.
"""

from __future__ import annotations

from typing import Any

from cairn.api.auth_identity import Authenticator
from cairn.errors import ErrAuthFailed, ErrAuthNotEnabled
from cairn.member.auth_tokens import random_token_part
from cairn.member.passwords import hash_in_thread, matches_in_thread
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalAuthenticateRequest, InternalRequest


class AuthService:
    def __init__(self, member: RaftMember, authenticator: Authenticator) -> None:
        self._member = member
        self._auth = authenticator

    async def _propose(self, kind: str, request: Any, context: Any) -> Any:
        caller = await self._auth.caller(context)
        internal = InternalRequest(**{kind: request})
        caller.stamp(internal.header)
        applied = await self._member.propose(internal)
        response = applied.response
        self._member.fill_header(response.header)  # type: ignore[attr-defined]
        return response

    async def AuthEnable(self, request: pb.AuthEnableRequest, context: Any) -> Any:
        return await self._propose("auth_enable", request, context)

    async def AuthDisable(self, request: pb.AuthDisableRequest, context: Any) -> Any:
        return await self._propose("auth_disable", request, context)

    async def AuthStatus(self, request: pb.AuthStatusRequest, context: Any) -> Any:
        return await self._propose("auth_status", request, context)

    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: Any
    ) -> pb.AuthenticateResponse:
        member = self._member
        await member.linearizable_barrier()
        while True:
            auth = member.applier.auth
            if not auth.enabled:
                raise ErrAuthNotEnabled()
            checked_at = auth.revision
            user = auth.user(request.name)
            if user is None or user.options.no_password:
                raise ErrAuthFailed()
            if not await matches_in_thread(user.password, request.password):
                raise ErrAuthFailed()
            internal = InternalRequest(
                authenticate=InternalAuthenticateRequest(
                    name=request.name, simple_token=random_token_part()
                )
            )
            applied = await member.propose(internal)
            if member.applier.auth.revision == checked_at:
                response: pb.AuthenticateResponse = applied.response  # type: ignore[assignment]
                member.fill_header(response.header)
                return response

    async def UserAdd(self, request: pb.AuthUserAddRequest, context: Any) -> Any:
        add = pb.AuthUserAddRequest(name=request.name)
        if request.HasField("options"):
            add.options.CopyFrom(request.options)
        if not request.options.no_password:
            add.hashedPassword = await self._hash(request.password)
        return await self._propose("auth_user_add", add, context)

    async def UserChangePassword(
        self, request: pb.AuthUserChangePasswordRequest, context: Any
    ) -> Any:
        change = pb.AuthUserChangePasswordRequest(
            name=request.name, hashedPassword=await self._hash(request.password)
        )
        return await self._propose("auth_user_change_password", change, context)

    async def _hash(self, password: str) -> str:
        return await hash_in_thread(password, self._member.config.bcrypt_cost)

    async def UserGet(self, request: pb.AuthUserGetRequest, context: Any) -> Any:
        return await self._propose("auth_user_get", request, context)

    async def UserList(self, request: pb.AuthUserListRequest, context: Any) -> Any:
        return await self._propose("auth_user_list", request, context)

    async def UserDelete(self, request: pb.AuthUserDeleteRequest, context: Any) -> Any:
        return await self._propose("auth_user_delete", request, context)

    async def UserGrantRole(self, request: pb.AuthUserGrantRoleRequest, context: Any) -> Any:
        return await self._propose("auth_user_grant_role", request, context)

    async def UserRevokeRole(self, request: pb.AuthUserRevokeRoleRequest, context: Any) -> Any:
        return await self._propose("auth_user_revoke_role", request, context)

    async def RoleAdd(self, request: pb.AuthRoleAddRequest, context: Any) -> Any:
        return await self._propose("auth_role_add", request, context)

    async def RoleGet(self, request: pb.AuthRoleGetRequest, context: Any) -> Any:
        return await self._propose("auth_role_get", request, context)

    async def RoleList(self, request: pb.AuthRoleListRequest, context: Any) -> Any:
        return await self._propose("auth_role_list", request, context)

    async def RoleDelete(self, request: pb.AuthRoleDeleteRequest, context: Any) -> Any:
        return await self._propose("auth_role_delete", request, context)

    async def RoleGrantPermission(
        self, request: pb.AuthRoleGrantPermissionRequest, context: Any
    ) -> Any:
        return await self._propose("auth_role_grant_permission", request, context)

    async def RoleRevokePermission(
        self, request: pb.AuthRoleRevokePermissionRequest, context: Any
    ) -> Any:
        return await self._propose("auth_role_revoke_permission", request, context)
