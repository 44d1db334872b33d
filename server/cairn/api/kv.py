"""The etcdserverpb.KV service: validation, then the member, then etcd's response header.

With auth enabled, writes carry the caller into the log and are checked when applied; reads
are checked against the state they were served from (after the linearizable barrier), as
etcd checks them, and refused with `revision of auth store is old` when the permissions
changed while the read ran.
"""

from __future__ import annotations

from typing import Any

from cairn.api.auth_identity import Authenticator, Caller
from cairn.api.validation import check_delete_range, check_put, check_range, check_txn
from cairn.errors import ErrAuthOldRevision
from cairn.member import auth_checks
from cairn.member.applier import is_write_txn
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest


class KVService:
    """Range, Put, DeleteRange, Txn and Compact; errors propagate as EtcdError."""

    def __init__(self, member: RaftMember, authenticator: Authenticator | None = None) -> None:
        self._member = member
        self._auth = authenticator if authenticator is not None else Authenticator(member)

    async def _propose(self, internal: InternalRequest, context: Any) -> Any:
        caller = await self._auth.caller(context)
        caller.stamp(internal.header)
        return await self._member.propose(internal)

    def _after_read(self, caller: Caller, check: Any) -> None:
        """etcd's serialized-read check: permission on the state read, then no auth change."""
        auth = self._member.applier.auth
        check(auth, caller.username)
        if caller.revision and caller.revision != auth.revision:
            raise ErrAuthOldRevision()

    async def Range(self, request: pb.RangeRequest, context: Any) -> pb.RangeResponse:
        check_range(request)
        caller = await self._auth.caller(context)
        response = await self._member.range(request)
        self._after_read(caller, lambda a, u: auth_checks.check_range(a, u, request))
        self._member.fill_header(response.header)
        return response

    async def Put(self, request: pb.PutRequest, context: Any) -> pb.PutResponse:
        check_put(request)
        applied = await self._propose(InternalRequest(put=request), context)
        response: pb.PutResponse = applied.response  # type: ignore[assignment]
        self._member.fill_header(response.header)
        return response

    async def DeleteRange(
        self, request: pb.DeleteRangeRequest, context: Any
    ) -> pb.DeleteRangeResponse:
        check_delete_range(request)
        applied = await self._propose(InternalRequest(delete_range=request), context)
        response: pb.DeleteRangeResponse = applied.response  # type: ignore[assignment]
        self._member.fill_header(response.header)
        return response

    async def Txn(self, request: pb.TxnRequest, context: Any) -> pb.TxnResponse:
        check_txn(request, self._member.config.max_txn_ops)
        if is_write_txn(request):
            applied = await self._propose(InternalRequest(txn=request), context)
            response: pb.TxnResponse = applied.response  # type: ignore[assignment]
        else:
            caller = await self._auth.caller(context)
            response = await self._member.readonly_txn(request)
            self._after_read(caller, lambda a, u: auth_checks.check_txn(a, u, request))
        self._member.fill_header(response.header)
        return response

    async def Compact(self, request: pb.CompactionRequest, context: Any) -> pb.CompactionResponse:
        # etcd 3.4 resolves the caller (an unknown token fails) but lets anyone compact.
        applied = await self._propose(InternalRequest(compaction=request), context)
        if request.physical:
            await self._member.wait_compaction(request.revision)
        response: pb.CompactionResponse = applied.response  # type: ignore[assignment]
        self._member.fill_header(response.header)
        return response
