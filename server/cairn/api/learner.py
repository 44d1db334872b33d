"""What a learner answers: etcd's learners serve serializable reads and Status, nothing else.

A learner is not a voter and may lag the log arbitrarily, so it cannot confirm a linearizable
read, and it must not take writes, leases, watches or membership calls that clients expect a
full member to serve. etcd refuses them in its gRPC interceptor with `rpc not supported for
learner` (code Unavailable, so clients move to another endpoint); cairn does the same here,
before any handler runs.
"""

from __future__ import annotations

from cairn.api.grpc_server import Gate
from cairn.errors import ErrNotSupportedForLearner
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb

STATUS = "/etcdserverpb.Maintenance/Status"
RANGE = "/etcdserverpb.KV/Range"


def learner_gate(member: RaftMember) -> Gate:
    """A gate for `build_server` that refuses on `member` while it is a learner."""

    def gate(method: str, request: object) -> None:
        if not member.is_learner:
            return
        if method == STATUS:
            return
        if method == RANGE and isinstance(request, pb.RangeRequest) and request.serializable:
            return
        raise ErrNotSupportedForLearner()

    return gate
