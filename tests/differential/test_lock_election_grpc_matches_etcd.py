"""The v3lock and v3election gRPC services, called the same way on a real etcd and on cairn.

etcdctl's `lock` and `elect` run the recipes in the client and never call these services;
gRPC clients and etcd's grpc-gateway do. Each case makes the same calls (some of them waiting
in the background) on both servers and requires the same transcript: every answer or error,
in order, with cluster id, member id and Raft term masked, and lease IDs (random on etcd)
replaced by the name of the lease they belong to.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf import text_format
from google.protobuf.message import Message
from tests.conftest import ServerFactory
from tests.differential.runner import target_kind

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc
from cairn.proto import v3election_pb2 as el
from cairn.proto import v3election_pb2_grpc as el_grpc
from cairn.proto import v3lock_pb2 as lk
from cairn.proto import v3lock_pb2_grpc as lk_grpc

pytestmark = [pytest.mark.slow, pytest.mark.etcd, pytest.mark.usefixtures("etcd_binaries")]

# Time for a background call to reach the point where it waits, or for a release to reach it.
SETTLE_S = 0.5
CALL_TIMEOUT_S = 10.0
_MASKED_HEADER = re.compile(r"(cluster_id|member_id|raft_term): \d+")


class Transcript:
    """Stubs for one server, and everything their calls answered, masked, in call order."""

    def __init__(self, url: str) -> None:
        self.channel = grpc.insecure_channel(url.removeprefix("http://"))
        self.lock = lk_grpc.LockStub(self.channel)
        self.election = el_grpc.ElectionStub(self.channel)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.leases = rpc_pb2_grpc.LeaseStub(self.channel)
        self.lines: list[str] = []
        self._names: dict[int, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=4)
        self._mutex = threading.Lock()

    def grant(self, name: str, ttl: int = 60) -> int:
        """A lease whose ID shows as <name> in the transcript."""
        lease_id = self.leases.LeaseGrant(pb.LeaseGrantRequest(TTL=ttl)).ID
        self._names[lease_id] = name
        return lease_id

    def call(self, label: str, method: Callable[..., Any], request: Message, **kw: Any) -> Any:
        """Call and record the answer or the error; returns the answer (None on error)."""
        response, text = self._answer(method, request, **kw)
        self.record(label, text)
        return response

    def _answer(self, method: Callable[..., Any], request: Message, **kw: Any) -> tuple[Any, str]:
        timeout = kw.pop("timeout", CALL_TIMEOUT_S)
        try:
            response = method(request, timeout=timeout, **kw)
        except grpc.RpcError as error:
            return None, f"error {error.code().name}: {error.details()}"
        return response, self.mask(response)

    def later(
        self, label: str, method: Callable[..., Any], request: Message, **kw: Any
    ) -> Callable[[], Any]:
        """The same call in the background (it may wait). Returns `finish`, which waits for
        the answer and records it then, so the transcript's order does not depend on which
        thread was faster."""
        future = self._pool.submit(self._answer, method, request, **kw)
        time.sleep(SETTLE_S)
        self.record(f"{label} still waiting", str(not future.done()))

        def finish() -> Any:
            response, text = future.result()
            self.record(label, text)
            return response

        return finish

    def observe(self, label: str, name: bytes) -> Callable[[], None]:
        """Open an Observe stream. `finish` gives it a moment for what is on its way, cancels
        it and records every answer it got (not how it ended: on a deadline, etcd ends the
        stream with UNKNOWN or DEADLINE_EXCEEDED depending on which side noticed first)."""
        call = self.election.Observe(el.LeaderRequest(name=name), timeout=60)
        seen: list[str] = []

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):
                for response in call:
                    seen.append(self.mask(response))

        reader = self._pool.submit(read)
        time.sleep(SETTLE_S)

        def finish() -> None:
            time.sleep(SETTLE_S)
            call.cancel()
            reader.result()
            self.record(label, " | ".join(seen) or "nothing")

        return finish

    def record(self, label: str, text: str) -> None:
        with self._mutex:
            self.lines.append(f"{label}: {text}")

    def mask(self, message: Message) -> str:
        text = _MASKED_HEADER.sub(
            r"\1: <masked>", text_format.MessageToString(message, as_one_line=True)
        )
        for lease_id, name in self._names.items():
            text = text.replace(format(lease_id, "x"), f"<{name}>").replace(
                str(lease_id), f"<{name}>"
            )
        # Leases the server granted itself (a Lock or Campaign without a lease).
        # In a key, the lease ID is everything after the last slash (hex, no leading zeros).
        text = re.sub(r'(?<=/)[0-9a-f]{1,16}(?=")', "<server lease>", text)
        return re.sub(r"lease: \d{6,}", "lease: <server lease>", text)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.channel.close()


def _keys(t: Transcript, prefix: bytes) -> None:
    t.call("keys", t.kv.Range, pb.RangeRequest(key=prefix, range_end=prefix[:-1] + b"0"))


# ---- Lock --------------------------------------------------------------------------------


def lock_answers_the_key_named_after_its_lease(t: Transcript) -> None:
    a = t.grant("a")
    t.call("lock", t.lock.Lock, lk.LockRequest(name=b"l", lease=a))
    t.call("lock again, same lease", t.lock.Lock, lk.LockRequest(name=b"l", lease=a))
    _keys(t, b"l/")


def lock_with_an_unknown_lease_is_refused(t: Transcript) -> None:
    t.call("lock", t.lock.Lock, lk.LockRequest(name=b"l", lease=12345))
    _keys(t, b"l/")


def lock_without_a_lease_grants_one_of_60_seconds(t: Transcript) -> None:
    held = t.call("lock", t.lock.Lock, lk.LockRequest(name=b"l"))
    t.call("no name", t.lock.Lock, lk.LockRequest())
    lease = int(held.key.split(b"/")[1], 16)
    answer = t.leases.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lease))
    t.record("granted ttl", str(answer.grantedTTL))


def lock_waits_until_the_holder_unlocks(t: Transcript) -> None:
    a, b = t.grant("a"), t.grant("b")
    held = t.call("lock a", t.lock.Lock, lk.LockRequest(name=b"l", lease=a))
    waiter = t.later("lock b", t.lock.Lock, lk.LockRequest(name=b"l", lease=b))
    t.call("unlock a", t.lock.Unlock, lk.UnlockRequest(key=held.key))
    waiter()
    _keys(t, b"l/")


def lock_waits_until_the_holders_lease_is_revoked(t: Transcript) -> None:
    a, b = t.grant("a"), t.grant("b")
    t.call("lock a", t.lock.Lock, lk.LockRequest(name=b"l", lease=a))
    waiter = t.later("lock b", t.lock.Lock, lk.LockRequest(name=b"l", lease=b))
    t.call("revoke a", t.leases.LeaseRevoke, pb.LeaseRevokeRequest(ID=a))
    waiter()


def lock_waiter_that_gives_up_leaves_the_queue(t: Transcript) -> None:
    a, b = t.grant("a"), t.grant("b")
    t.call("lock a", t.lock.Lock, lk.LockRequest(name=b"l", lease=a))
    t.call("lock b for 1s", t.lock.Lock, lk.LockRequest(name=b"l", lease=b), timeout=1.0)
    time.sleep(SETTLE_S)
    _keys(t, b"l/")


def unlock_deletes_the_key_and_needs_one(t: Transcript) -> None:
    held = t.call("lock", t.lock.Lock, lk.LockRequest(name=b"l", lease=t.grant("a")))
    t.call("unlock", t.lock.Unlock, lk.UnlockRequest(key=held.key))
    t.call("unlock a missing key", t.lock.Unlock, lk.UnlockRequest(key=b"l/nothing"))
    t.call("unlock no key", t.lock.Unlock, lk.UnlockRequest())
    _keys(t, b"l/")


# ---- Election ----------------------------------------------------------------------------


def campaign_proclaim_leader_resign(t: Transcript) -> None:
    a = t.grant("a")
    t.call("no leader yet", t.election.Leader, el.LeaderRequest(name=b"e"))
    won = t.call(
        "campaign", t.election.Campaign, el.CampaignRequest(name=b"e", lease=a, value=b"v1")
    )
    t.call(
        "campaign again, new value",
        t.election.Campaign,
        el.CampaignRequest(name=b"e", lease=a, value=b"v2"),
    )
    t.call("leader", t.election.Leader, el.LeaderRequest(name=b"e"))
    t.call("proclaim", t.election.Proclaim, el.ProclaimRequest(leader=won.leader, value=b"v3"))
    t.call("leader", t.election.Leader, el.LeaderRequest(name=b"e"))
    t.call("resign", t.election.Resign, el.ResignRequest(leader=won.leader))
    t.call("resign again", t.election.Resign, el.ResignRequest(leader=won.leader))
    t.call(
        "proclaim after resign",
        t.election.Proclaim,
        el.ProclaimRequest(leader=won.leader, value=b"x"),
    )
    t.call("no leader", t.election.Leader, el.LeaderRequest(name=b"e"))


def election_refuses_what_etcd_refuses(t: Transcript) -> None:
    a = t.grant("a")
    t.call(
        "campaign, unknown lease",
        t.election.Campaign,
        el.CampaignRequest(name=b"e", lease=999, value=b"v"),
    )
    won = t.call(
        "campaign", t.election.Campaign, el.CampaignRequest(name=b"e", lease=a, value=b"v")
    )
    t.call("proclaim, no leader key", t.election.Proclaim, el.ProclaimRequest(value=b"v"))
    t.call("resign, no leader key", t.election.Resign, el.ResignRequest())
    stale = el.LeaderKey(name=b"e", key=won.leader.key, rev=1, lease=a)
    t.call(
        "proclaim, wrong revision",
        t.election.Proclaim,
        el.ProclaimRequest(leader=stale, value=b"x"),
    )
    t.call("resign, wrong revision", t.election.Resign, el.ResignRequest(leader=stale))
    t.call("leader", t.election.Leader, el.LeaderRequest(name=b"e"))


def campaign_waits_and_observe_sees_each_leader_and_value(t: Transcript) -> None:
    a, b = t.grant("a"), t.grant("b")
    observer = t.observe("observe", b"e")
    won = t.call(
        "campaign a", t.election.Campaign, el.CampaignRequest(name=b"e", lease=a, value=b"a1")
    )
    waiter = t.later(
        "campaign b", t.election.Campaign, el.CampaignRequest(name=b"e", lease=b, value=b"b1")
    )
    t.call("proclaim a", t.election.Proclaim, el.ProclaimRequest(leader=won.leader, value=b"a2"))
    t.call("resign a", t.election.Resign, el.ResignRequest(leader=won.leader))
    waiter()
    observer()


def campaign_that_gives_up_leaves_the_queue(t: Transcript) -> None:
    a, b = t.grant("a"), t.grant("b")
    t.call("campaign a", t.election.Campaign, el.CampaignRequest(name=b"e", lease=a, value=b"a"))
    t.call(
        "campaign b for 1s",
        t.election.Campaign,
        el.CampaignRequest(name=b"e", lease=b, value=b"b"),
        timeout=1.0,
    )
    time.sleep(SETTLE_S)
    _keys(t, b"e/")


def observe_starts_with_the_current_leader(t: Transcript) -> None:
    t.call(
        "campaign",
        t.election.Campaign,
        el.CampaignRequest(name=b"e", lease=t.grant("a"), value=b"v"),
    )
    t.observe("observe", b"e")()
    t.observe("observe another election", b"other")()


CASES: dict[str, Callable[[Transcript], None]] = {
    case.__name__: case
    for case in (
        lock_answers_the_key_named_after_its_lease,
        lock_with_an_unknown_lease_is_refused,
        lock_without_a_lease_grants_one_of_60_seconds,
        lock_waits_until_the_holder_unlocks,
        lock_waits_until_the_holders_lease_is_revoked,
        lock_waiter_that_gives_up_leaves_the_queue,
        unlock_deletes_the_key_and_needs_one,
        campaign_proclaim_leader_resign,
        election_refuses_what_etcd_refuses,
        campaign_waits_and_observe_sees_each_leader_and_value,
        campaign_that_gives_up_leaves_the_queue,
        observe_starts_with_the_current_leader,
    )
}


def _run(url: str, case: Callable[[Transcript], None]) -> list[str]:
    transcript = Transcript(url)
    try:
        case(transcript)
    finally:
        transcript.close()
    return transcript.lines


@pytest.mark.parametrize("name", list(CASES))
def test_lock_and_election_answer_like_etcd(name: str, server_factory: ServerFactory) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        ref = pool.submit(server_factory, "etcd")
        tgt = pool.submit(server_factory, target_kind())
        reference, target = ref.result(), tgt.result()
        expected_f = pool.submit(_run, reference.client_url, CASES[name])
        actual_f = pool.submit(_run, target.client_url, CASES[name])
        expected, actual = expected_f.result(), actual_f.result()
    assert actual == expected
