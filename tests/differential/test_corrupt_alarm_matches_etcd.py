"""With a CORRUPT alarm active, etcdctl 3.4 sees the same answers from cairn as from etcd.

etcdctl cannot raise an alarm, so each server gets it over gRPC (Maintenance.Alarm ACTIVATE
CORRUPT for its own member ID, which etcd 3.4.23 accepts from any client), after a key and a
lease with a fixed ID were written. Then every step runs on both: writes of every kind fail
with `etcdserver: corrupt cluster`, reads and lease keep-alives still work, `alarm list`
shows the alarm, `alarm disarm` clears it and writes are accepted again.
"""

from __future__ import annotations

import grpc
import pytest
from tests.conftest import ServerFactory
from tests.differential.runner import Side, ctl, format_mismatches, run_scenario, scenario
from tests.support.servers import ServerProcess

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc as rpc

pytestmark = [pytest.mark.slow, pytest.mark.etcd, pytest.mark.usefixtures("etcd_binaries")]

LEASE = 0x1234

WHILE_CORRUPT = scenario(
    "corrupt_alarm",
    ctl("alarm", "list"),
    ctl("get", "a"),
    ctl("get", "a", "--consistency=s"),
    ctl("put", "a", "2"),
    ctl("del", "a"),
    ctl("txn", stdin='value("a") = "1"\n\nput b 1\n\nput c 1\n\n'),
    ctl("txn", stdin='value("a") = "1"\n\nget a\n\n\n'),
    ctl("compact", "1"),
    ctl("lease", "grant", "10"),
    ctl("lease", "list"),
    ctl("lease", "keep-alive", "--once", f"{LEASE:x}"),
    ctl("lease", "revoke", f"{LEASE:x}"),
    ctl("get", "", "--prefix"),
    ctl("alarm", "disarm"),
    ctl("alarm", "list"),
    ctl("put", "a", "3"),
    ctl("lease", "revoke", f"{LEASE:x}"),
    ctl("get", "", "--prefix", "-w", "json"),
)


def corrupt(server: ServerProcess) -> int:
    """Write the starting state and raise CORRUPT for the server's member; its member ID."""
    with grpc.insecure_channel(f"127.0.0.1:{server.client_port}") as channel:
        kv, lease, maintenance = (
            rpc.KVStub(channel),
            rpc.LeaseStub(channel),
            rpc.MaintenanceStub(channel),
        )
        kv.Put(pb.PutRequest(key=b"a", value=b"1"))
        lease.LeaseGrant(pb.LeaseGrantRequest(ID=LEASE, TTL=100))
        member = maintenance.Status(pb.StatusRequest()).header.member_id
        maintenance.Alarm(
            pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=member, alarm=pb.CORRUPT)
        )
        return int(member)


def test_corrupt_alarm_refuses_what_etcd_refuses(server_factory: ServerFactory) -> None:
    sides = []
    for kind in ("etcd", "cairn"):
        server = server_factory(kind)
        side = Side(kind, server)
        side.masker.add_replacement(str(corrupt(server)), "<member>")
        sides.append(side)
    reference, target = sides

    mismatches = run_scenario(WHILE_CORRUPT, reference, target)

    if mismatches:
        pytest.fail(format_mismatches(WHILE_CORRUPT, mismatches, reference, target), pytrace=False)
