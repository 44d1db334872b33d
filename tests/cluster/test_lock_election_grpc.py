"""The v3lock and v3election gRPC services on a cluster of three `cairn serve` processes.

These services run inside each member (proposals through Raft, linearizable reads, the
member's own watch hub), so a member that follows must serve them as well as the leader:
clients on every member contend for one lock and the sections never overlap, and a
Campaign waiting on a follower wins once the leader's session ends.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from tests.cluster.processes import ProcessCluster

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc
from cairn.proto import v3election_pb2 as el
from cairn.proto import v3election_pb2_grpc as el_grpc
from cairn.proto import v3lock_pb2 as lk
from cairn.proto import v3lock_pb2_grpc as lk_grpc

pytestmark = pytest.mark.slow

HOLD_S = 0.1


def test_lock_calls_on_every_member_hold_the_lock_one_at_a_time(tmp_path: Path) -> None:
    sections: list[tuple[float, float, int]] = []  # (entered, left, header revision)
    record = threading.Lock()
    with ProcessCluster(tmp_path) as cluster:
        channels = [grpc.insecure_channel(m.client_endpoint) for m in cluster.members.values()]

        def contend(client: int) -> None:
            channel = channels[client % 3]
            lease = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(pb.LeaseGrantRequest(TTL=30))
            locks = lk_grpc.LockStub(channel)
            for _ in range(2):
                held = locks.Lock(lk.LockRequest(name=b"L", lease=lease.ID), timeout=60)
                entered = time.time()
                time.sleep(HOLD_S)
                left = time.time()
                with record:
                    sections.append((entered, left, held.header.revision))
                locks.Unlock(lk.UnlockRequest(key=held.key), timeout=10)

        with ThreadPoolExecutor(max_workers=6) as pool:
            for future in [pool.submit(contend, i) for i in range(6)]:
                future.result()
        for channel in channels:
            channel.close()
    assert len(sections) == 12
    ordered = sorted(sections)
    for (_, left, rev), (entered, _, next_rev) in itertools.pairwise(ordered):
        assert left <= entered, "two Lock callers held the lock at once"
        assert rev < next_rev, "the revision at acquisition did not grow"


def test_campaign_waiting_on_a_follower_wins_when_the_leaders_lease_is_revoked(
    tmp_path: Path,
) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader_member = cluster.wait_for_leader()
        follower = next(m for m in cluster.members.values() if m is not leader_member)
        to_leader = grpc.insecure_channel(leader_member.client_endpoint)
        to_follower = grpc.insecure_channel(follower.client_endpoint)
        leases = rpc_pb2_grpc.LeaseStub(to_leader)
        first, second = (leases.LeaseGrant(pb.LeaseGrantRequest(TTL=30)).ID for _ in range(2))
        on_leader = el_grpc.ElectionStub(to_leader)
        on_follower = el_grpc.ElectionStub(to_follower)
        on_leader.Campaign(el.CampaignRequest(name=b"E", lease=first, value=b"one"), timeout=10)
        observed = on_follower.Observe(el.LeaderRequest(name=b"E"), timeout=30)
        assert next(observed).kv.value == b"one"
        waiting = on_follower.Campaign.future(
            el.CampaignRequest(name=b"E", lease=second, value=b"two"), timeout=30
        )
        time.sleep(1.0)
        assert not waiting.done(), "a second leader while the first one's key exists"
        leases.LeaseRevoke(pb.LeaseRevokeRequest(ID=first))
        won = waiting.result()
        assert won.leader.lease == second
        assert next(observed).kv.value == b"two"
        leader = on_leader.Leader(el.LeaderRequest(name=b"E"), timeout=10)
        assert leader.kv.key == won.leader.key
        observed.cancel()
        to_leader.close()
        to_follower.close()
