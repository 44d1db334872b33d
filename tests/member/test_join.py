"""Matching a joining member's --initial-cluster against the table the cluster answered.

The matching is pure (no I/O), so it is tested on its own; the call that fetches the table is
tested over real gRPC in tests/peer/test_lookup.py and tests/cluster/test_join_lookup.py.
"""

from __future__ import annotations

import pytest

from cairn.member.identity import Identity
from cairn.member.join import JoinError, assign_ids, remote_peer_urls
from cairn.peer import ClusterInfo, MemberInfo

CLUSTER_ID = 0xC1
TABLE = ClusterInfo(
    CLUSTER_ID,
    (
        MemberInfo(0xA1, "m1", ("http://10.0.0.1:2380",)),
        MemberInfo(0xA2, "m2", ("http://10.0.0.2:2381", "http://10.0.0.2:2380")),
        MemberInfo(0xB4, "", ("http://10.0.0.3:2380",), is_learner=True),
    ),
)
INITIAL = {
    "m4": ["http://10.0.0.3:2380"],
    "m1": ["http://10.0.0.1:2380"],
    "m2": ["http://10.0.0.2:2380", "http://10.0.0.2:2381"],
}


def test_the_member_takes_its_id_and_the_cluster_id_from_its_entry_by_peer_urls() -> None:
    joined = assign_ids("m4", INITIAL, TABLE)
    assert joined.identity == Identity("m4", 0xB4, CLUSTER_ID)


def test_the_peers_to_dial_are_every_other_member_of_the_table() -> None:
    joined = assign_ids("m4", INITIAL, TABLE)
    assert joined.peers == {
        0xA1: ["http://10.0.0.1:2380"],
        0xA2: ["http://10.0.0.2:2381", "http://10.0.0.2:2380"],
    }


def test_a_member_that_was_never_added_is_refused_as_member_count_is_unequal() -> None:
    initial = {**INITIAL, "m5": ["http://10.0.0.5:2380"]}
    with pytest.raises(JoinError, match=r"^error validating peerURLs .*: member count is unequal$"):
        assign_ids("m5", initial, TABLE)


def test_other_urls_than_were_added_are_refused_as_an_unmatched_member() -> None:
    initial = {**INITIAL, "m4": ["http://10.0.0.9:2380"]}
    with pytest.raises(JoinError) as raised:
        assign_ids("m4", initial, TABLE)
    message = str(raised.value)
    assert message.startswith("error validating peerURLs {cluster c1: ")
    assert "unmatched member while checking PeerURLs" in message
    assert "[http://10.0.0.3:2380] != [http://10.0.0.9:2380]" in message


def test_the_urls_asked_are_the_other_members_sorted() -> None:
    assert remote_peer_urls("m4", INITIAL) == [
        "http://10.0.0.1:2380",
        "http://10.0.0.2:2380",
        "http://10.0.0.2:2381",
    ]
