"""Who the leader's periodic corruption check names (etcd 3.4's rules, plus the leader when
the others agree against it): only hashes of one revision under one compaction count."""

from __future__ import annotations

from cairn.member.corruption import LocalHash, PeerHash, judge
from cairn.proto import rpc_pb2 as pb

LEADER, A, B, C = 0x1, 0xA, 0xB, 0xC
NOT_COMPACTED = -1


def local(hash_value: int = 7, revision: int = 10, compact: int = NOT_COMPACTED) -> LocalHash:
    return LocalHash(hash_value, revision, compact)


def peer(
    member: int, hash_value: int = 7, revision: int = 10, compact: int = NOT_COMPACTED
) -> PeerHash:
    response = pb.HashKVResponse(hash=hash_value, compact_revision=compact)
    response.header.revision = revision
    return PeerHash(member, response)


def test_agreeing_members_are_not_judged() -> None:
    assert judge(LEADER, local(), local(), [peer(A), peer(B)]) is None


def test_a_peer_with_another_hash_at_the_same_compaction_is_named() -> None:
    assert judge(LEADER, local(), local(), [peer(A), peer(B, hash_value=9)]) == B


def test_peers_that_could_not_answer_are_skipped() -> None:
    behind = PeerHash(A, error="etcdserver: mvcc: required revision is a future revision")
    assert judge(LEADER, local(), local(), [behind, peer(B)]) is None


def test_a_peer_compacted_elsewhere_is_not_compared_by_hash() -> None:
    """The peer applied a compaction the leader had not when it hashed (it has by the
    second hash): different records, not corruption."""
    later = local(revision=11, compact=5)
    assert judge(LEADER, local(), later, [peer(A, hash_value=9, compact=5)]) is None


def test_a_peer_ahead_of_the_leader_after_the_barrier_is_named() -> None:
    assert judge(LEADER, local(), local(), [peer(A, revision=11)]) == A


def test_a_peer_compacted_beyond_the_leader_after_the_barrier_is_named() -> None:
    assert judge(LEADER, local(), local(), [peer(A, compact=3)]) == A


def test_the_leader_whose_own_hash_changed_at_the_same_revision_is_named() -> None:
    assert judge(LEADER, local(), local(hash_value=8), [peer(A), peer(B)]) == LEADER


def test_the_leader_is_named_when_a_majority_agrees_against_it() -> None:
    assert judge(LEADER, local(), local(), [peer(A, hash_value=9), peer(B, hash_value=9)]) == LEADER


def test_a_lone_differing_peer_is_named_even_when_it_might_be_the_leader_at_fault() -> None:
    """With one of two peers unreachable nobody can tell; etcd 3.4 names the peer."""
    gone = PeerHash(B, error="not connected")
    assert judge(LEADER, local(), local(), [peer(A, hash_value=9), gone]) == A


def test_peers_that_disagree_among_themselves_do_not_outvote_the_leader() -> None:
    peers = [peer(A, hash_value=8), peer(B, hash_value=9), peer(C)]
    assert judge(LEADER, local(), local(), peers) == A
