"""The alarm table as applied state: GET / ACTIVATE / DEACTIVATE, persisted in LevelDB, and
the NOSPACE alarm refusing exactly what etcd's capped applier refuses (checked against etcd
3.4.23: puts, txns with a put in any branch, lease grants; deletes, delete-only txns and
compaction still go through)."""

from __future__ import annotations

from typing import cast

import pytest
from tests.mvcc.harness import EVERYTHING, KV, delete_op, put_op

from cairn.errors import ErrNoSpace
from cairn.member.alarms import alarm_text
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

MEMBER = 0x8E9E05C52164694D


def alarm(kv: KV, action: int, member: int = MEMBER, kind: int = pb.NOSPACE) -> pb.AlarmResponse:
    request = InternalRequest(alarm=pb.AlarmRequest(action=action, memberID=member, alarm=kind))  # type: ignore[arg-type]
    return cast(pb.AlarmResponse, kv._apply(lambda: kv.applier.apply(request)).response)


def listed(response: pb.AlarmResponse) -> list[tuple[int, int]]:
    return [(a.memberID, a.alarm) for a in response.alarms]


def test_activate_answers_the_alarm_and_get_lists_it(kv: KV) -> None:
    assert listed(alarm(kv, pb.AlarmRequest.GET, member=0, kind=pb.NONE)) == []
    assert listed(alarm(kv, pb.AlarmRequest.ACTIVATE)) == [(MEMBER, pb.NOSPACE)]
    assert listed(alarm(kv, pb.AlarmRequest.GET, member=0, kind=pb.NONE)) == [(MEMBER, pb.NOSPACE)]


def test_get_filters_by_member_and_type(kv: KV) -> None:
    alarm(kv, pb.AlarmRequest.ACTIVATE)
    alarm(kv, pb.AlarmRequest.ACTIVATE, member=7, kind=pb.CORRUPT)
    assert listed(alarm(kv, pb.AlarmRequest.GET, member=7, kind=pb.NONE)) == [(7, pb.CORRUPT)]
    assert listed(alarm(kv, pb.AlarmRequest.GET, member=0, kind=pb.NOSPACE)) == [
        (MEMBER, pb.NOSPACE)
    ]


def test_deactivate_answers_the_removed_alarm_and_nothing_when_none_was_active(kv: KV) -> None:
    alarm(kv, pb.AlarmRequest.ACTIVATE)
    assert listed(alarm(kv, pb.AlarmRequest.DEACTIVATE)) == [(MEMBER, pb.NOSPACE)]
    assert listed(alarm(kv, pb.AlarmRequest.DEACTIVATE)) == []
    assert listed(alarm(kv, pb.AlarmRequest.GET, member=0, kind=pb.NONE)) == []


def test_alarms_survive_a_restart(kv: KV) -> None:
    alarm(kv, pb.AlarmRequest.ACTIVATE)
    alarm(kv, pb.AlarmRequest.ACTIVATE, member=7, kind=pb.CORRUPT)
    alarm(kv, pb.AlarmRequest.DEACTIVATE, member=7, kind=pb.CORRUPT)
    kv.restart()
    assert kv.applier.alarms.sorted() == [(MEMBER, pb.NOSPACE)]


def test_nospace_refuses_puts_txns_with_puts_and_lease_grants(kv: KV) -> None:
    kv.put(b"k", b"v")
    alarm(kv, pb.AlarmRequest.ACTIVATE)
    with pytest.raises(ErrNoSpace):
        kv.put(b"k", b"w")
    with pytest.raises(ErrNoSpace):  # the put is in the branch that is not taken
        kv.txn(success=[delete_op(b"k")], failure=[put_op(b"k", b"w")])
    with pytest.raises(ErrNoSpace):
        kv.grant(5)
    assert kv.get(b"k").kvs[0].value == b"v"


def test_nospace_lets_deletes_delete_only_txns_and_compaction_through(kv: KV) -> None:
    for key in (b"a", b"b", b"c"):
        kv.put(key, b"v")
    alarm(kv, pb.AlarmRequest.ACTIVATE)
    assert kv.delete(b"a").deleted == 1
    assert kv.txn(success=[delete_op(b"b")]).succeeded
    kv.compact(kv.revision)
    assert [item.key for item in kv.get(*EVERYTHING).kvs] == [b"c"]


def test_disarming_nospace_accepts_writes_again(kv: KV) -> None:
    alarm(kv, pb.AlarmRequest.ACTIVATE)
    alarm(kv, pb.AlarmRequest.DEACTIVATE)
    kv.put(b"k", b"v")
    assert kv.get(b"k").kvs[0].value == b"v"


def test_alarm_text_is_etcds_compact_form_with_its_trailing_space() -> None:
    assert alarm_text(MEMBER, pb.NOSPACE) == "memberID:10276657743932975437 alarm:NOSPACE "
