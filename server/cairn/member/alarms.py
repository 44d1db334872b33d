"""The alarm table: which member raised which alarm (NOSPACE, CORRUPT), as replicated state.

Alarms are applied from the log like any write, so every member agrees on them, and they are
kept in LevelDB (the ALARMS prefix) in the same batch as the applied index, so a restart or
a snapshot image brings them back. etcd keeps them in its backend for the same reason.
"""

from __future__ import annotations

import struct

from cairn.mvcc.backend import ALARMS
from cairn.mvcc.store import MVCCStore
from cairn.proto import rpc_pb2 as pb

_KEY = struct.Struct(">QI")


def alarm_text(member_id: int, alarm: int) -> str:
    """One alarm as etcd prints it in Status.errors and `etcdctl alarm list`.

    etcd prints the AlarmMember message in Go's compact text form, trailing space included.
    """
    return f"memberID:{member_id} alarm:{pb.AlarmType.Name(alarm)} "


class AlarmTable:
    """The active alarms, loaded from the store's backend and changed by applied requests."""

    def __init__(self, store: MVCCStore) -> None:
        self._store = store
        self.active: set[tuple[int, int]] = set()
        for raw, _ in store.backend.scan(ALARMS):
            self.active.add(_KEY.unpack(raw))

    def has(self, alarm: int) -> bool:
        """Whether any member has `alarm` active."""
        return any(kind == alarm for _, kind in self.active)

    def sorted(self) -> list[tuple[int, int]]:
        """Active alarms in a stable order (member ID, then type), as responses list them."""
        return sorted(self.active)

    def apply(self, r: pb.AlarmRequest) -> pb.AlarmResponse:
        """GET lists (filtered by member and type when given), ACTIVATE adds, DEACTIVATE removes.

        ACTIVATE and DEACTIVATE answer with the alarm they touched; deactivating an alarm that
        is not active answers with none, as etcd does (`etcdctl alarm disarm` then prints
        nothing). Activating NONE changes nothing.
        """
        response = pb.AlarmResponse()
        entry = (r.memberID, int(r.alarm))
        if r.action == pb.AlarmRequest.GET:
            for member_id, alarm in self.sorted():
                if r.memberID and member_id != r.memberID:
                    continue
                if r.alarm != pb.NONE and alarm != r.alarm:
                    continue
                response.alarms.add(memberID=member_id, alarm=alarm)  # type: ignore[arg-type]
        elif r.action == pb.AlarmRequest.ACTIVATE:
            if r.alarm != pb.NONE:
                self.active.add(entry)
                self._store.stage_raw(ALARMS + _KEY.pack(*entry), b"")
                response.alarms.add(memberID=r.memberID, alarm=r.alarm)
        elif r.action == pb.AlarmRequest.DEACTIVATE and entry in self.active:
            self.active.discard(entry)
            self._store.stage_delete(ALARMS + _KEY.pack(*entry))
            response.alarms.add(memberID=r.memberID, alarm=r.alarm)
        return response
