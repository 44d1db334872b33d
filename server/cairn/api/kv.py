"""The etcdserverpb.KV service: validation, then the member, then etcd's response header."""

from __future__ import annotations

from cairn.api.validation import check_delete_range, check_put, check_range, check_txn
from cairn.member.applier import is_write_txn
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest


class KVService:
    """Range, Put, DeleteRange, Txn and Compact; errors propagate as EtcdError."""

    def __init__(self, member: RaftMember) -> None:
        self._member = member

    async def Range(self, request: pb.RangeRequest, context: object) -> pb.RangeResponse:
        check_range(request)
        response = await self._member.range(request)
        self._member.fill_header(response.header)
        return response

    async def Put(self, request: pb.PutRequest, context: object) -> pb.PutResponse:
        check_put(request)
        applied = await self._member.propose(InternalRequest(put=request))
        response: pb.PutResponse = applied.response  # type: ignore[assignment]
        self._member.fill_header(response.header)
        return response

    async def DeleteRange(
        self, request: pb.DeleteRangeRequest, context: object
    ) -> pb.DeleteRangeResponse:
        check_delete_range(request)
        applied = await self._member.propose(InternalRequest(delete_range=request))
        response: pb.DeleteRangeResponse = applied.response  # type: ignore[assignment]
        self._member.fill_header(response.header)
        return response

    async def Txn(self, request: pb.TxnRequest, context: object) -> pb.TxnResponse:
        check_txn(request, self._member.config.max_txn_ops)
        if is_write_txn(request):
            applied = await self._member.propose(InternalRequest(txn=request))
            response: pb.TxnResponse = applied.response  # type: ignore[assignment]
        else:
            response = await self._member.readonly_txn(request)
        self._member.fill_header(response.header)
        return response

    async def Compact(
        self, request: pb.CompactionRequest, context: object
    ) -> pb.CompactionResponse:
        applied = await self._member.propose(InternalRequest(compaction=request))
        if request.physical:
            await self._member.wait_compaction(request.revision)
        response: pb.CompactionResponse = applied.response  # type: ignore[assignment]
        self._member.fill_header(response.header)
        return response
