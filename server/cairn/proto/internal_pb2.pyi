from cairn.proto import rpc_pb2 as _rpc_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestHeader(_message.Message):
    __slots__ = ("ID", "username", "auth_revision")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    AUTH_REVISION_FIELD_NUMBER: _ClassVar[int]
    ID: int
    username: str
    auth_revision: int
    def __init__(self, ID: _Optional[int] = ..., username: _Optional[str] = ..., auth_revision: _Optional[int] = ...) -> None: ...

class InternalRequest(_message.Message):
    __slots__ = ("header", "put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke", "alarm", "member_attributes")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_RANGE_FIELD_NUMBER: _ClassVar[int]
    TXN_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_FIELD_NUMBER: _ClassVar[int]
    LEASE_GRANT_FIELD_NUMBER: _ClassVar[int]
    LEASE_REVOKE_FIELD_NUMBER: _ClassVar[int]
    ALARM_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    put: _rpc_pb2.PutRequest
    delete_range: _rpc_pb2.DeleteRangeRequest
    txn: _rpc_pb2.TxnRequest
    compaction: _rpc_pb2.CompactionRequest
    lease_grant: _rpc_pb2.LeaseGrantRequest
    lease_revoke: _rpc_pb2.LeaseRevokeRequest
    alarm: _rpc_pb2.AlarmRequest
    member_attributes: MemberAttributesRequest
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., put: _Optional[_Union[_rpc_pb2.PutRequest, _Mapping]] = ..., delete_range: _Optional[_Union[_rpc_pb2.DeleteRangeRequest, _Mapping]] = ..., txn: _Optional[_Union[_rpc_pb2.TxnRequest, _Mapping]] = ..., compaction: _Optional[_Union[_rpc_pb2.CompactionRequest, _Mapping]] = ..., lease_grant: _Optional[_Union[_rpc_pb2.LeaseGrantRequest, _Mapping]] = ..., lease_revoke: _Optional[_Union[_rpc_pb2.LeaseRevokeRequest, _Mapping]] = ..., alarm: _Optional[_Union[_rpc_pb2.AlarmRequest, _Mapping]] = ..., member_attributes: _Optional[_Union[MemberAttributesRequest, _Mapping]] = ...) -> None: ...

class MemberAttributesRequest(_message.Message):
    __slots__ = ("member_ID", "name", "client_urls")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_URLS_FIELD_NUMBER: _ClassVar[int]
    member_ID: int
    name: str
    client_urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, member_ID: _Optional[int] = ..., name: _Optional[str] = ..., client_urls: _Optional[_Iterable[str]] = ...) -> None: ...

class LeaseRecord(_message.Message):
    __slots__ = ("ID", "TTL")
    ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    ID: int
    TTL: int
    def __init__(self, ID: _Optional[int] = ..., TTL: _Optional[int] = ...) -> None: ...

class Forwarded(_message.Message):
    __slots__ = ("keep_alive", "time_to_live", "member_promote", "hash_kv")
    KEEP_ALIVE_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_LIVE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_PROMOTE_FIELD_NUMBER: _ClassVar[int]
    HASH_KV_FIELD_NUMBER: _ClassVar[int]
    keep_alive: _rpc_pb2.LeaseKeepAliveRequest
    time_to_live: _rpc_pb2.LeaseTimeToLiveRequest
    member_promote: _rpc_pb2.MemberPromoteRequest
    hash_kv: _rpc_pb2.HashKVRequest
    def __init__(self, keep_alive: _Optional[_Union[_rpc_pb2.LeaseKeepAliveRequest, _Mapping]] = ..., time_to_live: _Optional[_Union[_rpc_pb2.LeaseTimeToLiveRequest, _Mapping]] = ..., member_promote: _Optional[_Union[_rpc_pb2.MemberPromoteRequest, _Mapping]] = ..., hash_kv: _Optional[_Union[_rpc_pb2.HashKVRequest, _Mapping]] = ...) -> None: ...

class ForwardedAnswer(_message.Message):
    __slots__ = ("keep_alive", "time_to_live", "error", "member_promote", "hash_kv")
    KEEP_ALIVE_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_LIVE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MEMBER_PROMOTE_FIELD_NUMBER: _ClassVar[int]
    HASH_KV_FIELD_NUMBER: _ClassVar[int]
    keep_alive: _rpc_pb2.LeaseKeepAliveResponse
    time_to_live: _rpc_pb2.LeaseTimeToLiveResponse
    error: ForwardedError
    member_promote: _rpc_pb2.MemberPromoteResponse
    hash_kv: _rpc_pb2.HashKVResponse
    def __init__(self, keep_alive: _Optional[_Union[_rpc_pb2.LeaseKeepAliveResponse, _Mapping]] = ..., time_to_live: _Optional[_Union[_rpc_pb2.LeaseTimeToLiveResponse, _Mapping]] = ..., error: _Optional[_Union[ForwardedError, _Mapping]] = ..., member_promote: _Optional[_Union[_rpc_pb2.MemberPromoteResponse, _Mapping]] = ..., hash_kv: _Optional[_Union[_rpc_pb2.HashKVResponse, _Mapping]] = ...) -> None: ...

class ForwardedError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
