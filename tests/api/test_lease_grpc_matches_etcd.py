"""Lease calls etcdctl cannot make, sent over gRPC to a real etcd 3.4 and to cairn: the
answers (status code and message, or the response fields that do not depend on time or on
the server's identity) must be the same."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from tests.conftest import ServerFactory

from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import LeaseStub

pytestmark = [pytest.mark.slow, pytest.mark.etcd, pytest.mark.usefixtures("etcd_binaries")]

Outcome = tuple[str, str] | tuple[int, ...]


def on_both(
    server_factory: ServerFactory, calls: Callable[[LeaseStub], list[Outcome]]
) -> tuple[list[Outcome], list[Outcome]]:
    answers = []
    for kind in ("etcd", "cairn"):
        server = server_factory(kind)
        with grpc.insecure_channel(f"127.0.0.1:{server.client_port}") as channel:
            answers.append(calls(LeaseStub(channel)))
    return answers[0], answers[1]


def outcome(call: Callable[[], object], fields: Callable[[object], tuple[int, ...]]) -> Outcome:
    try:
        return fields(call())
    except grpc.RpcError as error:
        return (error.code().name, error.details())  # type: ignore[attr-defined]


def keep_alive_once(stub: LeaseStub, lease_id: int) -> pb.LeaseKeepAliveResponse:
    return next(iter(stub.LeaseKeepAlive(iter([pb.LeaseKeepAliveRequest(ID=lease_id)]))))


def test_a_client_chosen_lease_id_is_granted_once_then_already_exists(
    server_factory: ServerFactory,
) -> None:
    def calls(stub: LeaseStub) -> list[Outcome]:
        grant = pb.LeaseGrantRequest(ID=0x7E57, TTL=60)
        return [
            outcome(lambda: stub.LeaseGrant(grant, timeout=5), lambda r: (r.ID, r.TTL)),  # type: ignore[attr-defined]
            outcome(lambda: stub.LeaseGrant(grant, timeout=5), lambda r: (r.ID, r.TTL)),  # type: ignore[attr-defined]
            outcome(
                lambda: stub.LeaseGrant(pb.LeaseGrantRequest(ID=-3, TTL=1), timeout=5),
                lambda r: (r.ID, r.TTL),  # type: ignore[attr-defined]
            ),
        ]

    etcd, cairn = on_both(server_factory, calls)
    assert etcd[0] == (0x7E57, 60)
    assert etcd[1] == ("FAILED_PRECONDITION", "etcdserver: lease already exists")
    assert cairn == etcd


def test_keep_alive_and_time_to_live_of_an_unknown_lease(server_factory: ServerFactory) -> None:
    def calls(stub: LeaseStub) -> list[Outcome]:
        return [
            outcome(lambda: keep_alive_once(stub, 0x5EE), lambda r: (r.ID, r.TTL)),  # type: ignore[attr-defined]
            outcome(
                lambda: stub.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=0x5EE), timeout=5),
                lambda r: (r.ID, r.TTL, r.grantedTTL),  # type: ignore[attr-defined]
            ),
        ]

    etcd, cairn = on_both(server_factory, calls)
    assert etcd == [(0x5EE, 0), (0x5EE, -1, 0)]
    assert cairn == etcd


def test_keep_alive_answers_every_request_on_one_stream(server_factory: ServerFactory) -> None:
    def calls(stub: LeaseStub) -> list[Outcome]:
        stub.LeaseGrant(pb.LeaseGrantRequest(ID=0xA, TTL=30), timeout=5)
        stub.LeaseGrant(pb.LeaseGrantRequest(ID=0xB, TTL=40), timeout=5)
        ids = [0xA, 0xB, 0xC, 0xA]
        answers = stub.LeaseKeepAlive(iter([pb.LeaseKeepAliveRequest(ID=i) for i in ids]))
        return [(r.ID, r.TTL) for r in answers]

    etcd, cairn = on_both(server_factory, calls)
    assert etcd == [(0xA, 30), (0xB, 40), (0xC, 0), (0xA, 30)]
    assert cairn == etcd
