"""Auth over gRPC, what etcdctl cannot show, against a real etcd 3.4.23 side by side: simple
tokens (their shape, their TTL of inactivity with a short --auth-token-ttl, unknown ones),
calls without a user, refused watches, and the Maintenance service's unmapped auth errors.

Both servers get the same users and roles through etcdctl; every call is made on both and must
end the same way (status code and text, or the same response fields).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from tests.support.etcdctl import run_etcdctl
from tests.support.servers import ServerKind, ServerProcess, etcd_path

from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import AuthStub, KVStub, LeaseStub, MaintenanceStub, WatchStub
from cairn.proto.v3lock_pb2 import LockRequest
from cairn.proto.v3lock_pb2_grpc import LockStub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcd_path() is None, reason="needs etcd (Debian etcd-server)"),
]

TOKEN_TTL_S = 2
SETUP = (
    ("user", "add", "root:rootpw"),
    ("role", "add", "root"),
    ("user", "grant-role", "root", "root"),
    ("user", "add", "alice:pw"),
    ("role", "add", "reader"),
    ("role", "grant-permission", "reader", "read", "--prefix", "pub/"),
    ("user", "grant-role", "alice", "reader"),
    ("put", "pub/a", "1"),
    ("put", "secret", "s"),
    ("auth", "enable"),
)
Outcome = tuple[str, str]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[ServerKind, ServerProcess]]:
    base: Path = tmp_path_factory.mktemp("auth-tokens")
    started: dict[ServerKind, ServerProcess] = {}
    try:
        for kind in ("etcd", "cairn"):
            server = ServerProcess(
                kind, base / kind, extra_args=[f"--auth-token-ttl={TOKEN_TTL_S}"]
            ).start()
            started[kind] = server  # type: ignore[index]
            for args in SETUP:
                result = run_etcdctl(server.client_url, list(args))
                assert result.returncode == 0, (kind, args, result.stderr)
        yield started
    finally:
        for server in started.values():
            server.stop()


def channel(server: ServerProcess) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{server.client_port}")


def outcome(call: Callable[[], object]) -> Outcome:
    try:
        call()
    except grpc.RpcError as error:
        return error.code().name, str(error.details())
    return "OK", ""


def on_both(
    servers: dict[ServerKind, ServerProcess], call: Callable[[grpc.Channel], object]
) -> Outcome:
    """The same call on both servers; asserts they end the same way, returns how."""
    seen: dict[str, Outcome] = {}
    for kind, server in servers.items():
        with channel(server) as ch:
            seen[kind] = outcome(lambda ch=ch: call(ch))
    assert seen["cairn"] == seen["etcd"], seen
    return seen["cairn"]


def token(server: ServerProcess, name: str = "alice", password: str = "pw") -> str:
    with channel(server) as ch:
        return AuthStub(ch).Authenticate(pb.AuthenticateRequest(name=name, password=password)).token


def read_with(ch: grpc.Channel, tok: str, key: bytes = b"pub/a") -> object:
    return KVStub(ch).Range(pb.RangeRequest(key=key), metadata=[("token", tok)], timeout=5)


def test_authenticate_issues_simple_tokens_of_random_letters_and_the_raft_index(
    servers: dict[ServerKind, ServerProcess],
) -> None:
    for server in servers.values():
        issued = token(server)
        assert re.fullmatch(r"[A-Za-z]{16}\.[0-9]+", issued), issued
        assert issued != token(server)


def test_bad_credentials_are_refused_alike(servers: dict[ServerKind, ServerProcess]) -> None:
    refused = (
        "INVALID_ARGUMENT",
        "etcdserver: authentication failed, invalid user ID or password",
    )
    for name, password in (("alice", "wrong"), ("nobody", "pw"), ("", "")):
        request = pb.AuthenticateRequest(name=name, password=password)
        assert on_both(servers, lambda ch, r=request: AuthStub(ch).Authenticate(r)) == refused


def test_a_token_used_within_its_ttl_stays_valid_and_expires_after_ttl_without_use(
    servers: dict[ServerKind, ServerProcess],
) -> None:
    tokens = {kind: token(server) for kind, server in servers.items()}
    for _ in range(4):  # 4 x 0.8 s: longer than the TTL, but never TTL apart
        time.sleep(TOKEN_TTL_S * 0.4)
        for kind, server in servers.items():
            with channel(server) as ch:
                assert outcome(lambda ch=ch, k=kind: read_with(ch, tokens[k])) == ("OK", "")
    time.sleep(TOKEN_TTL_S + 1.5)
    for kind, server in servers.items():
        with channel(server) as ch:
            expired = outcome(lambda ch=ch, k=kind: read_with(ch, tokens[k]))
        assert expired == ("UNAUTHENTICATED", "etcdserver: invalid auth token"), kind


def test_unknown_and_malformed_tokens_are_invalid(servers: dict[ServerKind, ServerProcess]) -> None:
    invalid = ("UNAUTHENTICATED", "etcdserver: invalid auth token")
    for bogus in ("abc", "abcdefghijklmnop.1", "not.a.token"):
        assert on_both(servers, lambda ch, t=bogus: read_with(ch, t)) == invalid
        md = [("token", bogus)]
        put = pb.PutRequest(key=b"pub/x", value=b"v")
        assert on_both(servers, lambda ch, md=md, p=put: KVStub(ch).Put(p, metadata=md)) == invalid


def test_requests_without_a_user_are_refused_with_user_name_is_empty(
    servers: dict[ServerKind, ServerProcess],
) -> None:
    empty = ("INVALID_ARGUMENT", "etcdserver: user name is empty")
    assert on_both(servers, lambda ch: KVStub(ch).Range(pb.RangeRequest(key=b"pub/a"))) == empty
    put = pb.PutRequest(key=b"pub/a", value=b"v")
    assert on_both(servers, lambda ch: KVStub(ch).Put(put)) == empty
    assert on_both(servers, lambda ch: AuthStub(ch).UserList(pb.AuthUserListRequest())) == empty


def test_maintenance_answers_with_the_auth_packages_unmapped_errors(
    servers: dict[ServerKind, ServerProcess],
) -> None:
    def hash_kv(ch: grpc.Channel, md: list[tuple[str, str]]) -> object:
        return MaintenanceStub(ch).HashKV(pb.HashKVRequest(), metadata=md)

    assert on_both(servers, lambda ch: hash_kv(ch, [])) == ("UNKNOWN", "auth: user name is empty")
    bogus = [("token", "abc")]
    assert on_both(servers, lambda ch: hash_kv(ch, bogus)) == (
        "UNKNOWN",
        "auth: invalid auth token",
    )
    for kind, server in servers.items():
        with channel(server) as ch:
            alice = [("token", token(server))]
            assert outcome(lambda ch=ch, md=alice: hash_kv(ch, md)) == (
                "UNKNOWN",
                "auth: permission denied",
            ), kind
            root = [("token", token(server, "root", "rootpw"))]
            assert outcome(lambda ch=ch, md=root: hash_kv(ch, md)) == ("OK", ""), kind


def _first_watch_response(ch: grpc.Channel, key: bytes, md: list[tuple[str, str]]) -> object:
    def requests() -> Iterator[pb.WatchRequest]:
        yield pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key))
        time.sleep(1)

    stream = WatchStub(ch).Watch(requests(), metadata=md, timeout=5)
    first = next(iter(stream))
    stream.cancel()
    return first


def test_a_watch_without_read_permission_is_created_and_canceled_with_etcds_reason(
    servers: dict[ServerKind, ServerProcess],
) -> None:
    answers: dict[str, list[tuple[int, bool, bool, str]]] = {}
    for kind, server in servers.items():
        alice = [("token", token(server))]
        seen = []
        with channel(server) as ch:
            for key, md in ((b"secret", alice), (b"pub/a", alice), (b"pub/a", [])):
                r = _first_watch_response(ch, key, md)
                seen.append((r.watch_id, r.created, r.canceled, r.cancel_reason))  # type: ignore[attr-defined]
        answers[kind] = seen
    assert answers["cairn"] == answers["etcd"]
    assert answers["cairn"] == [
        (-1, True, True, "rpc error: code = PermissionDenied desc = etcdserver: permission denied"),
        (0, True, False, ""),
        (-1, True, True, "rpc error: code = InvalidArgument desc = etcdserver: user name is empty"),
    ]


def test_lock_takes_its_key_as_the_caller(servers: dict[ServerKind, ServerProcess]) -> None:
    """alice may only read pub/: the Lock service writing her key there is refused, as the
    same call by root is not."""
    answers: dict[str, tuple[Outcome, Outcome]] = {}
    for kind, server in servers.items():
        with channel(server) as ch:
            locks = LockStub(ch)
            alice = [("token", token(server))]
            root = [("token", token(server, "root", "rootpw"))]
            grant = pb.LeaseGrantRequest(TTL=30)
            lease = LeaseStub(ch).LeaseGrant(grant, metadata=root).ID
            request = LockRequest(name=b"pub/lock", lease=lease)
            answers[kind] = (
                outcome(lambda r=request, md=alice, s=locks: s.Lock(r, metadata=md, timeout=10)),
                outcome(lambda r=request, md=root, s=locks: s.Lock(r, metadata=md, timeout=10)),
            )
    assert answers["cairn"] == answers["etcd"]
    assert answers["cairn"] == (("UNKNOWN", "etcdserver: permission denied"), ("OK", ""))


def test_snapshot_needs_root(servers: dict[ServerKind, ServerProcess]) -> None:
    def first_chunk(ch: grpc.Channel, md: list[tuple[str, str]]) -> object:
        stream = MaintenanceStub(ch).Snapshot(pb.SnapshotRequest(), metadata=md, timeout=10)
        first = next(iter(stream))
        stream.cancel()
        return first

    assert on_both(servers, lambda ch: first_chunk(ch, [])) == (
        "UNKNOWN",
        "auth: user name is empty",
    )
    for kind, server in servers.items():
        with channel(server) as ch:
            alice = [("token", token(server))]
            assert outcome(lambda ch=ch, md=alice: first_chunk(ch, md)) == (
                "UNKNOWN",
                "auth: permission denied",
            ), kind
            root = [("token", token(server, "root", "rootpw"))]
            assert outcome(lambda ch=ch, md=root: first_chunk(ch, md)) == ("OK", ""), kind
