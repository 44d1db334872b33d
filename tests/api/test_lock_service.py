"""Lock service behaviour cairn deliberately takes from etcd 3.5 rather than 3.4.23.

etcd 3.4.23 answers a Lock caller whose lease expired while it waited with its (deleted) key,
as if it held the lock, while the holder it waited for may be long gone and another caller
may hold the lock. etcd 3.5 refuses with `mutex: session is expired`, and so does cairn.
"""

from __future__ import annotations

import time

import grpc
import pytest
from tests.conftest import ServerFactory

from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import KVStub, LeaseStub
from cairn.proto.v3lock_pb2 import LockRequest, UnlockRequest
from cairn.proto.v3lock_pb2_grpc import LockStub

pytestmark = pytest.mark.slow


def test_lock_waiter_whose_lease_expired_is_told_its_session_expired(
    server_factory: ServerFactory,
) -> None:
    server = server_factory("cairn")
    with grpc.insecure_channel(f"127.0.0.1:{server.client_port}") as channel:
        leases, locks = LeaseStub(channel), LockStub(channel)
        holder = leases.LeaseGrant(pb.LeaseGrantRequest(TTL=60)).ID
        short = leases.LeaseGrant(pb.LeaseGrantRequest(TTL=2)).ID  # never kept alive
        held = locks.Lock(LockRequest(name=b"L", lease=holder), timeout=10)
        waiting = locks.Lock.future(LockRequest(name=b"L", lease=short), timeout=20)
        time.sleep(4)  # the short lease expires; its key goes with it
        assert not waiting.done()
        locks.Unlock(UnlockRequest(key=held.key), timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            waiting.result()
        assert refused.value.code() is grpc.StatusCode.UNKNOWN
        assert refused.value.details() == "mutex: session is expired"
        left = KVStub(channel).Range(pb.RangeRequest(key=b"L/", range_end=b"L0"))
        assert left.count == 0
