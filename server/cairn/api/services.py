"""Which object serves which etcd gRPC service, for `cairn serve`."""

from __future__ import annotations

from cairn.api.cluster import ClusterService
from cairn.api.election import ElectionService
from cairn.api.kv import KVService
from cairn.api.lease import LeaseService
from cairn.api.lock import LockService
from cairn.api.maintenance import MaintenanceService
from cairn.api.watch import DEFAULT_PROGRESS_NOTIFY_INTERVAL_S, WatchService
from cairn.member.raft_member import RaftMember


def etcd_services(
    member: RaftMember,
    advertise_client_urls: list[str],
    *,
    watch_progress_notify_interval_s: float = DEFAULT_PROGRESS_NOTIFY_INTERVAL_S,
) -> dict[str, object]:
    """The implemented services by full name; the rest answer UNIMPLEMENTED.

    The member also starts publishing its name and client URLs here: the client URLs are
    an API-layer setting (--advertise-client-urls), and publishing them is what makes the
    member visible to `member list` and `etcdctl --cluster`.
    """
    member.publish(advertise_client_urls)
    return {
        "etcdserverpb.KV": KVService(member),
        "etcdserverpb.Lease": LeaseService(member),
        "etcdserverpb.Cluster": ClusterService(member),
        "etcdserverpb.Maintenance": MaintenanceService(member),
        "etcdserverpb.Watch": WatchService(member, watch_progress_notify_interval_s),
        "v3lockpb.Lock": LockService(member),
        "v3electionpb.Election": ElectionService(member),
    }
