"""Guards on cairn's protocol definitions: fresh codegen, etcd's method paths, etcd's wire format.

Unmodified etcd clients only work against cairn if every gRPC method path and every field
number matches etcd v3.4/v3.5 exactly, and a mistake there compiles and runs fine: it only
shows up as a client silently reading a zero. So the facts are written down a second time
here, independently of the .proto sources, and the two must agree.
"""

from __future__ import annotations

import filecmp
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message

from cairn.proto import (
    auth_pb2,
    generate,
    internal_pb2,
    kv_pb2,
    peer_pb2,
    rpc_pb2,
    rpc_pb2_grpc,
    v3election_pb2,
    v3election_pb2_grpc,
    v3lock_pb2,
    v3lock_pb2_grpc,
)

ALL_FILES: list[FileDescriptor] = [
    kv_pb2.DESCRIPTOR,
    auth_pb2.DESCRIPTOR,
    rpc_pb2.DESCRIPTOR,
    v3lock_pb2.DESCRIPTOR,
    v3election_pb2.DESCRIPTOR,
    internal_pb2.DESCRIPTOR,
]

# ---------------------------------------------------------------------------------------------
# (a) The committed generated code is what the sources generate.
# ---------------------------------------------------------------------------------------------


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    """Regenerating into a scratch directory reproduces the committed files byte for byte."""
    fresh = {path.name: path for path in generate.generate_into(tmp_path)}
    committed = {
        path.name: path for path in generate.PROTO_DIR.iterdir() if generate.is_generated(path)
    }
    hint = "generated protobuf code is stale: run `make proto` and commit the result"
    assert sorted(committed) == sorted(fresh), hint
    stale = [
        name
        for name in sorted(fresh)
        if not filecmp.cmp(fresh[name], committed[name], shallow=False)
    ]
    assert not stale, f"{hint} (differs: {', '.join(stale)})"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    """Two runs give identical bytes; otherwise the freshness check above would be flaky."""
    first = generate.generate_into(tmp_path / "one")
    second = generate.generate_into(tmp_path / "two")
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))


# ---------------------------------------------------------------------------------------------
# (b) gRPC method paths, request/response types and streaming shape are etcd's.
# ---------------------------------------------------------------------------------------------

UU, US, SS = "unary_unary", "unary_stream", "stream_stream"


def _methods(
    package: str, service: str, rows: list[tuple[str, str, str, str]]
) -> list[tuple[str, str, str, str]]:
    """Expand (method, request, response, shape) rows into full path and full type names."""
    return [
        (f"/{package}.{service}/{method}", f"{package}.{request}", f"{package}.{response}", shape)
        for method, request, response, shape in rows
    ]


# From etcd's v3 API reference: every service, every method, in the order etcd declares them.
EXPECTED_METHODS: list[tuple[str, str, str, str]] = [
    *_methods(
        "etcdserverpb",
        "KV",
        [
            ("Range", "RangeRequest", "RangeResponse", UU),
            ("Put", "PutRequest", "PutResponse", UU),
            ("DeleteRange", "DeleteRangeRequest", "DeleteRangeResponse", UU),
            ("Txn", "TxnRequest", "TxnResponse", UU),
            ("Compact", "CompactionRequest", "CompactionResponse", UU),
        ],
    ),
    *_methods("etcdserverpb", "Watch", [("Watch", "WatchRequest", "WatchResponse", SS)]),
    *_methods(
        "etcdserverpb",
        "Lease",
        [
            ("LeaseGrant", "LeaseGrantRequest", "LeaseGrantResponse", UU),
            ("LeaseRevoke", "LeaseRevokeRequest", "LeaseRevokeResponse", UU),
            ("LeaseKeepAlive", "LeaseKeepAliveRequest", "LeaseKeepAliveResponse", SS),
            ("LeaseTimeToLive", "LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse", UU),
            ("LeaseLeases", "LeaseLeasesRequest", "LeaseLeasesResponse", UU),
        ],
    ),
    *_methods(
        "etcdserverpb",
        "Cluster",
        [
            ("MemberAdd", "MemberAddRequest", "MemberAddResponse", UU),
            ("MemberRemove", "MemberRemoveRequest", "MemberRemoveResponse", UU),
            ("MemberUpdate", "MemberUpdateRequest", "MemberUpdateResponse", UU),
            ("MemberList", "MemberListRequest", "MemberListResponse", UU),
            ("MemberPromote", "MemberPromoteRequest", "MemberPromoteResponse", UU),
        ],
    ),
    *_methods(
        "etcdserverpb",
        "Maintenance",
        [
            ("Alarm", "AlarmRequest", "AlarmResponse", UU),
            ("Status", "StatusRequest", "StatusResponse", UU),
            ("Defragment", "DefragmentRequest", "DefragmentResponse", UU),
            ("Hash", "HashRequest", "HashResponse", UU),
            ("HashKV", "HashKVRequest", "HashKVResponse", UU),
            ("Snapshot", "SnapshotRequest", "SnapshotResponse", US),
            ("MoveLeader", "MoveLeaderRequest", "MoveLeaderResponse", UU),
            ("Downgrade", "DowngradeRequest", "DowngradeResponse", UU),
        ],
    ),
    *_methods(
        "etcdserverpb",
        "Auth",
        [
            ("AuthEnable", "AuthEnableRequest", "AuthEnableResponse", UU),
            ("AuthDisable", "AuthDisableRequest", "AuthDisableResponse", UU),
            ("AuthStatus", "AuthStatusRequest", "AuthStatusResponse", UU),
            ("Authenticate", "AuthenticateRequest", "AuthenticateResponse", UU),
            ("UserAdd", "AuthUserAddRequest", "AuthUserAddResponse", UU),
            ("UserGet", "AuthUserGetRequest", "AuthUserGetResponse", UU),
            ("UserList", "AuthUserListRequest", "AuthUserListResponse", UU),
            ("UserDelete", "AuthUserDeleteRequest", "AuthUserDeleteResponse", UU),
            (
                "UserChangePassword",
                "AuthUserChangePasswordRequest",
                "AuthUserChangePasswordResponse",
                UU,
            ),
            ("UserGrantRole", "AuthUserGrantRoleRequest", "AuthUserGrantRoleResponse", UU),
            ("UserRevokeRole", "AuthUserRevokeRoleRequest", "AuthUserRevokeRoleResponse", UU),
            ("RoleAdd", "AuthRoleAddRequest", "AuthRoleAddResponse", UU),
            ("RoleGet", "AuthRoleGetRequest", "AuthRoleGetResponse", UU),
            ("RoleList", "AuthRoleListRequest", "AuthRoleListResponse", UU),
            ("RoleDelete", "AuthRoleDeleteRequest", "AuthRoleDeleteResponse", UU),
            (
                "RoleGrantPermission",
                "AuthRoleGrantPermissionRequest",
                "AuthRoleGrantPermissionResponse",
                UU,
            ),
            (
                "RoleRevokePermission",
                "AuthRoleRevokePermissionRequest",
                "AuthRoleRevokePermissionResponse",
                UU,
            ),
        ],
    ),
    *_methods(
        "v3lockpb",
        "Lock",
        [
            ("Lock", "LockRequest", "LockResponse", UU),
            ("Unlock", "UnlockRequest", "UnlockResponse", UU),
        ],
    ),
    *_methods(
        "v3electionpb",
        "Election",
        [
            ("Campaign", "CampaignRequest", "CampaignResponse", UU),
            ("Proclaim", "ProclaimRequest", "ProclaimResponse", UU),
            ("Leader", "LeaderRequest", "LeaderResponse", UU),
            ("Observe", "LeaderRequest", "LeaderResponse", US),
            ("Resign", "ResignRequest", "ResignResponse", UU),
        ],
    ),
]

_SHAPES = {(False, False): UU, (False, True): US, (True, True): SS, (True, False): "stream_unary"}


def test_service_descriptors_match_etcd() -> None:
    """Every declared service method, across all files, is exactly etcd's: no more, no fewer."""
    actual = [
        (
            f"/{service.full_name}/{method.name}",
            method.input_type.full_name,
            method.output_type.full_name,
            _SHAPES[(method.client_streaming, method.server_streaming)],
        )
        for file in ALL_FILES
        for service in file.services_by_name.values()
        for method in service.methods
    ]
    assert sorted(actual) == sorted(EXPECTED_METHODS)


class _RecordingChannel:
    """Stands in for grpc.Channel and records the path and shape of every stub method built."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}

    def __getattr__(self, shape: str) -> Callable[..., object]:
        if shape not in _SHAPES.values():
            raise AttributeError(shape)

        def build(path: str, *args: Any, **kwargs: Any) -> object:
            self.paths[path] = shape
            return object()

        return build


def test_generated_stubs_call_etcd_paths() -> None:
    """The client stubs, which is what a real client uses, dial etcd's paths with etcd's shapes."""
    channel = _RecordingChannel()
    stubs = [
        rpc_pb2_grpc.KVStub,
        rpc_pb2_grpc.WatchStub,
        rpc_pb2_grpc.LeaseStub,
        rpc_pb2_grpc.ClusterStub,
        rpc_pb2_grpc.MaintenanceStub,
        rpc_pb2_grpc.AuthStub,
        v3lock_pb2_grpc.LockStub,
        v3election_pb2_grpc.ElectionStub,
    ]
    for stub in stubs:
        stub(channel)
    assert channel.paths == {path: shape for path, _, _, shape in EXPECTED_METHODS}


# ---------------------------------------------------------------------------------------------
# (c) Wire-level pins: exact bytes for messages whose numbering clients depend on.
# ---------------------------------------------------------------------------------------------

WIRE_CASES: list[tuple[str, Message, str]] = [
    ("RangeRequest.count_only=9", rpc_pb2.RangeRequest(count_only=True), "48 01"),
    (
        "RangeRequest key..sort_target",
        rpc_pb2.RangeRequest(
            key=b"a",
            range_end=b"b",
            limit=3,
            revision=4,
            sort_order=rpc_pb2.RangeRequest.DESCEND,
            sort_target=rpc_pb2.RangeRequest.VALUE,
            serializable=True,
            keys_only=True,
        ),
        "0a 01 61 12 01 62 18 03 20 04 28 02 30 04 38 01 40 01",
    ),
    (
        "RangeRequest min/max mod/create revision 10..13",
        rpc_pb2.RangeRequest(
            min_mod_revision=1, max_mod_revision=2, min_create_revision=3, max_create_revision=4
        ),
        "50 01 58 02 60 03 68 04",
    ),
    ("RangeResponse.count=4", rpc_pb2.RangeResponse(more=True, count=7), "18 01 20 07"),
    (
        "ResponseHeader",
        rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4),
        "08 01 10 02 18 03 20 04",
    ),
    (
        "KeyValue fields 1..6",
        kv_pb2.KeyValue(
            key=b"k", create_revision=2, mod_revision=3, version=4, value=b"v", lease=5
        ),
        "0a 01 6b 10 02 18 03 20 04 2a 01 76 30 05",
    ),
    (
        "Event DELETE=1, prev_kv=3",
        kv_pb2.Event(type=kv_pb2.Event.DELETE, prev_kv=kv_pb2.KeyValue()),
        "08 01 1a 00",
    ),
    (
        "PutRequest fields 1..6",
        rpc_pb2.PutRequest(
            key=b"k", value=b"v", lease=3, prev_kv=True, ignore_value=True, ignore_lease=True
        ),
        "0a 01 6b 12 01 76 18 03 20 01 28 01 30 01",
    ),
    ("DeleteRangeRequest.prev_kv=3", rpc_pb2.DeleteRangeRequest(prev_kv=True), "18 01"),
    ("Compare.version=4", rpc_pb2.Compare(version=1), "20 01"),
    ("Compare.create_revision=5", rpc_pb2.Compare(create_revision=1), "28 01"),
    ("Compare.mod_revision=6", rpc_pb2.Compare(mod_revision=1), "30 01"),
    ("Compare.value=7", rpc_pb2.Compare(value=b"x"), "3a 01 78"),
    (
        "Compare NOT_EQUAL/LEASE, lease=8, range_end=64",
        rpc_pb2.Compare(
            result=rpc_pb2.Compare.NOT_EQUAL,
            target=rpc_pb2.Compare.LEASE,
            key=b"k",
            lease=7,
            range_end=b"z",
        ),
        "08 03 10 04 1a 01 6b 40 07 82 04 01 7a",
    ),
    ("RequestOp.request_txn=4", rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest()), "22 00"),
    ("ResponseOp.response_txn=4", rpc_pb2.ResponseOp(response_txn=rpc_pb2.TxnResponse()), "22 00"),
    (
        "CompactionRequest.physical=2",
        rpc_pb2.CompactionRequest(revision=5, physical=True),
        "08 05 10 01",
    ),
    (
        "WatchRequest.progress_request=3",
        rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()),
        "1a 00",
    ),
    (
        "WatchCreateRequest filters=5 (packed), prev_kv=6, watch_id=7, fragment=8",
        rpc_pb2.WatchCreateRequest(
            progress_notify=True,
            filters=[rpc_pb2.WatchCreateRequest.NODELETE],
            prev_kv=True,
            watch_id=9,
            fragment=True,
        ),
        "20 01 2a 01 01 30 01 38 09 40 01",
    ),
    (
        "WatchResponse cancel_reason=6, fragment=7, events=11",
        rpc_pb2.WatchResponse(
            watch_id=1,
            created=True,
            canceled=True,
            compact_revision=2,
            cancel_reason="x",
            fragment=True,
            events=[kv_pb2.Event()],
        ),
        "10 01 18 01 20 01 28 02 32 01 78 38 01 5a 00",
    ),
    ("LeaseKeepAliveResponse", rpc_pb2.LeaseKeepAliveResponse(ID=1, TTL=2), "10 01 18 02"),
    (
        "LeaseTimeToLiveResponse grantedTTL=4, keys=5",
        rpc_pb2.LeaseTimeToLiveResponse(grantedTTL=1, keys=[b"k"]),
        "20 01 2a 01 6b",
    ),
    ("Member.isLearner=5", rpc_pb2.Member(ID=1, isLearner=True), "08 01 28 01"),
    (
        "MemberListRequest.linearizable=1 (3.5)",
        rpc_pb2.MemberListRequest(linearizable=True),
        "08 01",
    ),
    (
        "StatusResponse raftAppliedIndex=7, errors=8, dbSizeInUse=9, isLearner=10",
        rpc_pb2.StatusResponse(raftAppliedIndex=1, errors=["e"], dbSizeInUse=2, isLearner=True),
        "38 01 42 01 65 48 02 50 01",
    ),
    ("StatusResponse.dbSizeInUse=9 alone", rpc_pb2.StatusResponse(dbSizeInUse=1), "48 01"),
    (
        "AlarmRequest DEACTIVATE/CORRUPT",
        rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=5, alarm=rpc_pb2.CORRUPT
        ),
        "08 02 10 05 18 02",
    ),
    (
        "AuthUserAddRequest options=3, hashedPassword=4",
        rpc_pb2.AuthUserAddRequest(
            options=auth_pb2.UserAddOptions(no_password=True), hashedPassword="h"
        ),
        "1a 02 08 01 22 01 68",
    ),
    (
        "AuthStatusResponse.authRevision=3",
        rpc_pb2.AuthStatusResponse(enabled=True, authRevision=4),
        "10 01 18 04",
    ),
    (
        "Permission READWRITE",
        auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"a", range_end=b"b"),
        "08 02 12 01 61 1a 01 62",
    ),
    (
        "LeaderKey fields 1..4",
        v3election_pb2.LeaderKey(name=b"n", key=b"k", rev=3, lease=4),
        "0a 01 6e 12 01 6b 18 03 20 04",
    ),
    ("LockRequest", v3lock_pb2.LockRequest(name=b"n", lease=2), "0a 01 6e 10 02"),
    # cairn's own log entry format: renumbering it would make existing WALs unreadable.
    (
        "InternalRequest.compaction=7",
        internal_pb2.InternalRequest(
            header=internal_pb2.RequestHeader(ID=1),
            compaction=rpc_pb2.CompactionRequest(revision=2, physical=True),
        ),
        "3a 04 08 02 10 01 a2 06 02 08 01",
    ),
    (
        "InternalRequest.put=4",
        internal_pb2.InternalRequest(put=rpc_pb2.PutRequest(key=b"k")),
        "22 03 0a 01 6b",
    ),
    (
        "InternalRequest.lease_grant=8",
        internal_pb2.InternalRequest(lease_grant=rpc_pb2.LeaseGrantRequest(TTL=5, ID=7)),
        "42 04 08 05 10 07",
    ),
    (
        "InternalRequest.lease_revoke=9",
        internal_pb2.InternalRequest(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=7)),
        "4a 02 08 07",
    ),
    (
        "InternalRequest.alarm=10 (etcd's InternalRaftRequest number)",
        internal_pb2.InternalRequest(
            alarm=rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=5, alarm=1)
        ),
        "52 06 08 01 10 05 18 01",
    ),
    # The lease record in LevelDB: renumbering it would make stored leases unreadable.
    ("LeaseRecord ID=1, TTL=2", internal_pb2.LeaseRecord(ID=7, TTL=600), "08 07 10 d8 04"),
    # Lease requests a follower forwards to the leader: members of different versions must agree.
    (
        "Forwarded keep_alive=1",
        internal_pb2.Forwarded(keep_alive=rpc_pb2.LeaseKeepAliveRequest(ID=5)),
        "0a 02 08 05",
    ),
    (
        "Forwarded time_to_live=2",
        internal_pb2.Forwarded(time_to_live=rpc_pb2.LeaseTimeToLiveRequest(ID=5, keys=True)),
        "12 04 08 05 10 01",
    ),
    (
        "ForwardedAnswer error=3 (code=1, message=2)",
        internal_pb2.ForwardedAnswer(error=internal_pb2.ForwardedError(code="X", message="m")),
        "1a 06 0a 01 58 12 01 6d",
    ),
    (
        "ForwardedAnswer member_promote=4",
        internal_pb2.ForwardedAnswer(member_promote=rpc_pb2.MemberPromoteResponse()),
        "22 00",
    ),
    (
        "Forwarded member_promote=3",
        internal_pb2.Forwarded(member_promote=rpc_pb2.MemberPromoteRequest(ID=9)),
        "1a 02 08 09",
    ),
    (
        "peer ForwardRequest hello=1, payload=2",
        peer_pb2.ForwardRequest(hello=peer_pb2.PeerHello(cluster_id=1), payload=b"p"),
        "0a 02 08 01 12 01 70",
    ),
]


@pytest.mark.parametrize(
    ("message", "expected_hex"), [c[1:] for c in WIRE_CASES], ids=[c[0] for c in WIRE_CASES]
)
def test_wire_bytes(message: Message, expected_hex: str) -> None:
    """Serialization gives etcd's exact bytes, and those bytes parse back to the same message."""
    expected = bytes.fromhex(expected_hex)
    assert message.SerializeToString(deterministic=True) == expected
    assert type(message).FromString(expected) == message


def test_compare_target_union_oneof() -> None:
    """The value being compared lives in one oneof named target_union, as etcd clients expect."""
    oneof = rpc_pb2.Compare.DESCRIPTOR.oneofs_by_name["target_union"]
    assert {f.name: f.number for f in oneof.fields} == {
        "version": 4,
        "create_revision": 5,
        "mod_revision": 6,
        "value": 7,
        "lease": 8,
    }
    assert rpc_pb2.Compare.FromString(bytes.fromhex("40 07")).WhichOneof("target_union") == "lease"


@pytest.mark.parametrize(
    ("message", "oneof", "members"),
    [
        (
            rpc_pb2.RequestOp,
            "request",
            ["request_range", "request_put", "request_delete_range", "request_txn"],
        ),
        (
            rpc_pb2.ResponseOp,
            "response",
            ["response_range", "response_put", "response_delete_range", "response_txn"],
        ),
        (
            rpc_pb2.WatchRequest,
            "request_union",
            ["create_request", "cancel_request", "progress_request"],
        ),
    ],
)
def test_oneofs(message: type[Message], oneof: str, members: list[str]) -> None:
    """Oneof names and members: generated accessors (WhichOneof) depend on them."""
    fields = message.DESCRIPTOR.oneofs_by_name[oneof].fields
    assert [f.name for f in fields] == members
    assert [f.number for f in fields] == list(
        range(fields[0].number, fields[0].number + len(members))
    )


def test_internal_request_oneof_numbers() -> None:
    """cairn's log entry keeps etcd's internal field numbers (4-10, the Auth requests at
    1000-1204, and 1301 for publish)."""
    fields = internal_pb2.InternalRequest.DESCRIPTOR.oneofs_by_name["request"].fields
    assert [(f.name, f.number) for f in fields] == [
        ("put", 4),
        ("delete_range", 5),
        ("txn", 6),
        ("compaction", 7),
        ("lease_grant", 8),
        ("lease_revoke", 9),
        ("alarm", 10),
        ("auth_enable", 1000),
        ("auth_disable", 1011),
        ("authenticate", 1012),
        ("auth_status", 1013),
        ("auth_user_add", 1100),
        ("auth_user_delete", 1101),
        ("auth_user_get", 1102),
        ("auth_user_change_password", 1103),
        ("auth_user_grant_role", 1104),
        ("auth_user_revoke_role", 1105),
        ("auth_user_list", 1106),
        ("auth_role_list", 1107),
        ("auth_role_add", 1200),
        ("auth_role_delete", 1201),
        ("auth_role_get", 1202),
        ("auth_role_grant_permission", 1203),
        ("auth_role_revoke_permission", 1204),
        ("member_attributes", 1301),
    ]


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (kv_pb2.Event.EventType, {"PUT": 0, "DELETE": 1}),
        (auth_pb2.Permission.Type, {"READ": 0, "WRITE": 1, "READWRITE": 2}),
        (rpc_pb2.RangeRequest.SortOrder, {"NONE": 0, "ASCEND": 1, "DESCEND": 2}),
        (
            rpc_pb2.RangeRequest.SortTarget,
            {"KEY": 0, "VERSION": 1, "CREATE": 2, "MOD": 3, "VALUE": 4},
        ),
        (rpc_pb2.Compare.CompareResult, {"EQUAL": 0, "GREATER": 1, "LESS": 2, "NOT_EQUAL": 3}),
        (
            rpc_pb2.Compare.CompareTarget,
            {"VERSION": 0, "CREATE": 1, "MOD": 2, "VALUE": 3, "LEASE": 4},
        ),
        (rpc_pb2.WatchCreateRequest.FilterType, {"NOPUT": 0, "NODELETE": 1}),
        (rpc_pb2.AlarmType, {"NONE": 0, "NOSPACE": 1, "CORRUPT": 2}),
        (rpc_pb2.AlarmRequest.AlarmAction, {"GET": 0, "ACTIVATE": 1, "DEACTIVATE": 2}),
        (rpc_pb2.DowngradeRequest.DowngradeAction, {"VALIDATE": 0, "ENABLE": 1, "CANCEL": 2}),
    ],
)
def test_enum_values(enum: Any, values: dict[str, int]) -> None:
    """Enum members and numbers are etcd's (the number is what travels on the wire)."""
    assert {v.name: v.number for v in enum.DESCRIPTOR.values} == values


def test_proto_packages() -> None:
    """Package names are part of every message's and method's full name, so they must be etcd's."""
    assert [f.package for f in ALL_FILES] == [
        "mvccpb",
        "authpb",
        "etcdserverpb",
        "v3lockpb",
        "v3electionpb",
        "cairnpb",
    ]
