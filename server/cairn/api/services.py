"""Which object serves which etcd gRPC service, for `cairn serve`."""

from __future__ import annotations

from cairn.api.auth import AuthService
from cairn.api.auth_identity import Authenticator
from cairn.api.auth_wrap import guard_cluster, guard_maintenance, with_caller
from cairn.api.cluster import ClusterService
from cairn.api.election import ElectionService
from cairn.api.kv import KVService
from cairn.api.lease import LeaseService
from cairn.api.lock import LockService
from cairn.api.maintenance import MaintenanceService
from cairn.api.recipes import as_recipe_error
from cairn.api.watch import DEFAULT_PROGRESS_NOTIFY_INTERVAL_S, WatchService
from cairn.member.raft_member import RaftMember


def etcd_services(
    member: RaftMember,
    advertise_client_urls: list[str],
    *,
    watch_progress_notify_interval_s: float = DEFAULT_PROGRESS_NOTIFY_INTERVAL_S,
    client_cert_auth: bool = False,
) -> dict[str, object]:
    """The implemented services by full name; the rest answer UNIMPLEMENTED.

    The member also starts publishing its name and client URLs here: the client URLs are
    an API-layer setting (--advertise-client-urls), and publishing them is what makes the
    member visible to `member list` and `etcdctl --cluster`.
    """
    member.publish(advertise_client_urls)
    # With --client-cert-auth, a client certificate's CN is the user when no token is sent.
    auth = Authenticator(member, client_cert_auth)
    return {
        "etcdserverpb.KV": KVService(member, auth),
        "etcdserverpb.Lease": LeaseService(member, auth),
        "etcdserverpb.Cluster": guard_cluster(ClusterService(member), auth),
        "etcdserverpb.Maintenance": guard_maintenance(MaintenanceService(member), auth),
        "etcdserverpb.Watch": WatchService(member, watch_progress_notify_interval_s, auth),
        "etcdserverpb.Auth": AuthService(member, auth),
        "v3lockpb.Lock": with_caller(
            LockService(member), ("Lock", "Unlock"), auth, as_recipe_error
        ),
        "v3electionpb.Election": with_caller(
            ElectionService(member),
            ("Campaign", "Proclaim", "Resign", "Leader", "Observe"),
            auth,
            as_recipe_error,
        ),
    }
