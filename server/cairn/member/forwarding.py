"""Client requests a follower hands to the leader, over the peer transport.

Some answers only the leader has: the lease clocks (keep-alives, TimeToLive) and how far a
learner's log is (MemberPromote). etcd sends those over its peer HTTP endpoints; cairn sends a
`Forwarded` request as an opaque payload of the peer `Forward` call, so peer TLS covers it and
no client-port credentials are needed between members. An error the leader answered comes back
as the same etcd error; `not leader` (leadership moved meanwhile) is raised as ErrNotLeader so
the caller can try again.
"""

from __future__ import annotations

from cairn.errors import ErrNotLeader, EtcdError
from cairn.peer import PeerUnavailable, Transport
from cairn.proto.internal_pb2 import Forwarded, ForwardedAnswer, ForwardedError


async def to_leader(
    transport: Transport, leader: int, request: Forwarded, timeout: float
) -> ForwardedAnswer:
    """Have `leader` answer; raises PeerUnavailable when it cannot be asked now (no leader,
    unreachable), ErrNotLeader when it stopped leading, another EtcdError it answered."""
    if leader == 0 or leader not in transport.peer_ids:
        raise PeerUnavailable(f"no leader to forward to (leader {leader:x})")
    raw = await transport.forward(leader, request.SerializeToString(), timeout)
    answer = ForwardedAnswer.FromString(raw)
    if answer.WhichOneof("answer") == "error":
        if answer.error.message == ErrNotLeader.text:
            raise ErrNotLeader()
        forwarded = EtcdError(answer.error.message)
        forwarded.code = answer.error.code
        raise forwarded
    return answer


def error_answer(error: EtcdError) -> ForwardedAnswer:
    """The answer carrying the error a client of the leader would have got."""
    return ForwardedAnswer(error=ForwardedError(code=error.code, message=error.message))
