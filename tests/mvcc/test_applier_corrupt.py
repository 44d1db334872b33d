"""The CORRUPT alarm refuses, at apply time, exactly what etcd 3.4.23's corrupt applier refuses
(checked live against etcd with the alarm activated over gRPC: puts, deletes, txns that write,
compaction, lease grants and revokes fail with `etcdserver: corrupt cluster`, gRPC DATA_LOSS;
reads and read-only txns are still served), and disarming it lets writes through again."""

from __future__ import annotations

from typing import cast

import pytest
from tests.mvcc.harness import KV, get_op, put_op

from cairn.errors import DATA_LOSS, ErrCorrupt
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

MEMBER = 0x8E9E05C52164694D


def apply(kv: KV, request: InternalRequest) -> object:
    return kv._apply(lambda: kv.applier.apply(request)).response


def set_corrupt(kv: KV, action: int) -> None:
    alarm = pb.AlarmRequest(action=action, memberID=MEMBER, alarm=pb.CORRUPT)  # type: ignore[arg-type]
    apply(kv, InternalRequest(alarm=alarm))


WRITES = {
    "put": InternalRequest(put=pb.PutRequest(key=b"k", value=b"w")),
    "delete": InternalRequest(delete_range=pb.DeleteRangeRequest(key=b"k")),
    "txn": InternalRequest(txn=pb.TxnRequest(success=[put_op(b"k", b"w")])),
    "compaction": InternalRequest(compaction=pb.CompactionRequest(revision=1)),
    "lease grant": InternalRequest(lease_grant=pb.LeaseGrantRequest(ID=7, TTL=60)),
    "lease revoke": InternalRequest(lease_revoke=pb.LeaseRevokeRequest(ID=5)),
}


@pytest.mark.parametrize("kind", WRITES)
def test_corrupt_refuses_every_write_with_etcds_error(kv: KV, kind: str) -> None:
    kv.put(b"k", b"v")
    kv.grant(5)
    set_corrupt(kv, pb.AlarmRequest.ACTIVATE)
    revision = kv.revision
    with pytest.raises(ErrCorrupt) as refused:
        apply(kv, WRITES[kind])
    assert (refused.value.code, refused.value.message) == (DATA_LOSS, "etcdserver: corrupt cluster")
    assert kv.revision == revision
    assert kv.get(b"k").kvs[0].value == b"v"
    assert kv.store.leases.get(5) is not None


def test_corrupt_still_serves_reads_and_read_only_txns(kv: KV) -> None:
    kv.put(b"k", b"v")
    set_corrupt(kv, pb.AlarmRequest.ACTIVATE)
    assert kv.get(b"k").kvs[0].value == b"v"
    txn = kv.txn(success=[get_op(b"k")])
    assert txn.responses[0].response_range.kvs[0].value == b"v"


def test_disarming_corrupt_accepts_writes_again(kv: KV) -> None:
    set_corrupt(kv, pb.AlarmRequest.ACTIVATE)
    set_corrupt(kv, pb.AlarmRequest.DEACTIVATE)
    response = cast(pb.PutResponse, apply(kv, WRITES["put"]))
    assert response.header.revision == kv.revision
    assert kv.get(b"k").kvs[0].value == b"w"


def test_corrupt_survives_a_restart(kv: KV) -> None:
    set_corrupt(kv, pb.AlarmRequest.ACTIVATE)
    kv.restart()
    with pytest.raises(ErrCorrupt):
        apply(kv, WRITES["put"])
