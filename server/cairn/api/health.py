"""etcd's /health semantics (the 3.5 form), /livez and /readyz.

/health answers ``{"health":"true","reason":""}`` (200) or ``{"health":"false","reason":...}``
(503). It fails, in this order, on an active alarm (``ALARM NOSPACE``, ``ALARM CORRUPT``) unless
``?exclude=<ALARM>`` names it; on ``RAFT NO LEADER`` unless ``?serializable=true``; and when a
read through the member (linearizable, or serializable with ``?serializable=true``) fails
within the request timeout (``RANGE ERROR:<etcd error>``). etcd 3.4.23 answers
``{"health":"false"}`` with no reason and, unlike 3.5, fails a member without a leader even
with ``?serializable=true``; cairn implements 3.5's form.

/livez and /readyz follow etcd 3.6's health probes: /livez asks only whether the member can
serve a local (serializable) read, /readyz also that it holds no CORRUPT alarm and can serve a
linearizable read. Both answer ``ok`` or 503 with the failed checks listed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass

from cairn.errors import EtcdError
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb

HEALTH_KEY = b"health"
"""The key the health read asks for (its value does not matter, only that the read works)."""


@dataclass(frozen=True)
class Health:
    healthy: bool
    reason: str = ""

    def body(self) -> bytes:
        return json.dumps(
            {"health": "true" if self.healthy else "false", "reason": self.reason},
            separators=(",", ":"),
        ).encode()


def _alarm_reason(member: RaftMember, excluded: Iterable[str]) -> str:
    skip = set(excluded)
    for _, alarm in member.applier.alarms.sorted():
        name = pb.AlarmType.Name(alarm)  # type: ignore[arg-type]
        if name in skip:
            continue
        return f"ALARM {name}" if name in ("NOSPACE", "CORRUPT") else "ALARM UNKNOWN"
    return ""


async def read_error(member: RaftMember, serializable: bool) -> str:
    """Empty when a one-key read through the member works in time, else etcd's error text."""
    request = pb.RangeRequest(key=HEALTH_KEY, keys_only=True, limit=1, serializable=serializable)
    try:
        await asyncio.wait_for(member.range(request), member.cluster.request_timeout_s + 1)
    except EtcdError as error:
        return error.message
    except TimeoutError:
        return "etcdserver: request timed out"
    return ""


async def check_health(
    member: RaftMember, *, serializable: bool, excluded_alarms: Iterable[str] = ()
) -> Health:
    """/health: alarms, then leader, then a read, as etcd 3.5 checks them."""
    reason = _alarm_reason(member, excluded_alarms)
    if reason:
        return Health(False, reason)
    if not serializable and not member.leader:
        return Health(False, "RAFT NO LEADER")
    error = await read_error(member, serializable)
    if error:
        return Health(False, f"RANGE ERROR:{error}")
    return Health(True)


async def probe_checks(member: RaftMember, *, ready: bool) -> list[tuple[str, bool]]:
    """The named checks of /livez (ready=False) or /readyz (ready=True), each passed or not."""
    checks: list[tuple[str, bool]] = []
    if ready:
        corrupt = any(alarm == pb.CORRUPT for _, alarm in member.applier.alarms.active)
        checks.append(("data_corruption", not corrupt))
    checks.append(("serializable_read", not await read_error(member, serializable=True)))
    if ready:
        checks.append(("linearizable_read", not await read_error(member, serializable=False)))
    return checks
