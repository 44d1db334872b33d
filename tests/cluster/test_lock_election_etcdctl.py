"""`etcdctl lock` and `etcdctl elect` against a cluster of three `cairn serve` processes.

etcdctl runs etcd's lock and election recipes in the client, on leases, txns, ranges and
watches; with its clients spread over the three members, these tests check what users rely
on: critical sections never overlap, the lock's revision (ETCD_LOCK_REV, the create revision
of the holder's key) grows from holder to holder so it can serve as a fencing token, a lock
whose holder was killed passes on once the holder's lease expires, and an election observer
sees the next leader when the current one resigns.

Each critical section is a small Python program that records, under flock, when it entered
and left and which key and revision etcdctl handed it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from tests.cluster.processes import ProcessCluster
from tests.support.etcdctl import etcdctl_path, start_etcdctl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
]

SECTION = """\
import fcntl, json, os, sys, time
log, label, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
def record(kind):
    with open(log, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps({"label": label, "kind": kind, "t": time.time(), "pid": os.getpid(),
                            "key": os.environ["ETCD_LOCK_KEY"],
                            "rev": int(os.environ["ETCD_LOCK_REV"])}) + "\\n")
record("enter")
time.sleep(hold)
record("exit")
"""


@dataclass
class Section:
    """One critical section as its program recorded it."""

    label: str
    key: str
    rev: int
    entered: float
    left: float | None
    pid: int


class Recorder:
    """The critical-section program and the log its runs append to."""

    def __init__(self, base: Path) -> None:
        self.program = base / "section.py"
        self.program.write_text(SECTION)
        self.log = base / "sections.log"
        self.log.touch()
        self._outputs: list[IO[bytes]] = []
        self.base = base

    def command(self, label: str, hold_s: float) -> list[str]:
        return [sys.executable, str(self.program), str(self.log), label, str(hold_s)]

    def start_lock(
        self, endpoint: str, label: str, hold_s: float, *lock_flags: str
    ) -> subprocess.Popen[bytes]:
        """`etcdctl lock L -- <section>` in the background."""
        out = open(self.base / f"{label}.out", "wb")  # noqa: SIM115 - closed in close()
        self._outputs.append(out)
        args = ["lock", *lock_flags, "L", "--", *self.command(label, hold_s)]
        return start_etcdctl(endpoint, args, stdout=out, stderr=out)

    def sections(self) -> dict[str, Section]:
        found: dict[str, Section] = {}
        for line in self.log.read_text().splitlines():
            entry = json.loads(line)
            if entry["kind"] == "enter":
                found[entry["label"]] = Section(
                    entry["label"], entry["key"], entry["rev"], entry["t"], None, entry["pid"]
                )
            else:
                found[entry["label"]].left = entry["t"]
        return found

    def wait_entered(self, label: str, timeout: float) -> Section:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            section = self.sections().get(label)
            if section is not None:
                return section
            time.sleep(0.05)
        raise AssertionError(f"{label} never entered its critical section")

    def close(self) -> None:
        for out in self._outputs:
            out.close()


def assert_serial(sections: list[Section]) -> None:
    """No two sections overlap, and each holder's revision is larger than the one before."""
    ordered = sorted(sections, key=lambda s: s.entered)
    for before, after in itertools.pairwise(ordered):
        assert before.left is not None and before.left <= after.entered, (
            f"{after.label} entered at {after.entered} while {before.label} held the lock "
            f"until {before.left}"
        )
        assert before.rev < after.rev, f"revision went from {before.rev} to {after.rev}"
        assert before.key != after.key


def wait_all(processes: list[subprocess.Popen[bytes]], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


def test_concurrent_locks_on_every_member_never_overlap_and_revisions_grow(
    tmp_path: Path,
) -> None:
    recorder = Recorder(tmp_path)
    with ProcessCluster(tmp_path) as cluster:
        endpoints = [m.client_endpoint for m in cluster.members.values()]
        clients = []
        for round_ in range(2):
            clients += [
                recorder.start_lock(endpoints[i % 3], f"c{round_}-{i}", 0.2) for i in range(5)
            ]
        codes = wait_all(clients, timeout=60)
    recorder.close()
    assert codes == [0] * len(clients)
    sections = recorder.sections()
    assert len(sections) == 10
    assert_serial(list(sections.values()))


def test_killed_holders_lock_passes_to_the_next_waiter_when_its_lease_expires(
    tmp_path: Path,
) -> None:
    recorder = Recorder(tmp_path)
    with ProcessCluster(tmp_path) as cluster:
        m1, m2, m3 = (m.client_endpoint for m in cluster.members.values())
        # The holder's section runs far longer than the test; its 2 s session ends it.
        holder = recorder.start_lock(m1, "holder", 600, "--ttl", "2")
        held = recorder.wait_entered("holder", timeout=20)
        waiters = [recorder.start_lock(m2, "w1", 0.2), recorder.start_lock(m3, "w2", 0.2)]
        time.sleep(1.0)
        assert set(recorder.sections()) == {"holder"}, "a waiter entered while the lock was held"
        holder.send_signal(signal.SIGKILL)  # no unlock, no revoke, no more keep-alives
        killed_at = time.time()
        holder.wait()
        codes = wait_all(waiters, timeout=30)
        _kill_orphaned_section(held)
    recorder.close()
    assert codes == [0, 0]
    sections = recorder.sections()
    sections["holder"].left = killed_at
    assert_serial(list(sections.values()))
    first = min(sections["w1"].entered, sections["w2"].entered)
    # The lock passed on through the expiry of the 2 s lease, not through an unlock: the last
    # keep-alive was at most a third of the TTL before the kill.
    assert first - killed_at > 1.0


def _kill_orphaned_section(section: Section) -> None:
    """The killed etcdctl's section program outlives it (as a real workload would, which is
    what fencing tokens are for); end it so the test leaves nothing running."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(section.pid, signal.SIGKILL)


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


def _wait_output(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in _read(path):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never printed {text!r}: {_read(path)!r}")


def test_observer_sees_the_next_leader_after_the_leader_resigns(tmp_path: Path) -> None:
    outputs: dict[str, IO[bytes]] = {}
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def elect(name: str, endpoint: str, *args: str) -> None:
        outputs[name] = open(tmp_path / f"{name}.out", "wb")  # noqa: SIM115
        processes[name] = start_etcdctl(
            endpoint, ["elect", *args], stdout=outputs[name], stderr=outputs[name]
        )

    with ProcessCluster(tmp_path) as cluster:
        m1, m2, m3 = (m.client_endpoint for m in cluster.members.values())
        try:
            elect("observer", m1, "-l", "E")
            elect("first", m2, "E", "one")
            _wait_output(tmp_path / "first.out", "one", timeout=20)
            elect("second", m3, "E", "two")
            _wait_output(tmp_path / "observer.out", "one", timeout=20)
            time.sleep(1.0)
            assert "two" not in _read(tmp_path / "second.out"), "two leaders at once"
            processes["first"].send_signal(signal.SIGINT)  # etcdctl resigns, then exits
            assert processes["first"].wait(timeout=20) == 0
            _wait_output(tmp_path / "second.out", "two", timeout=20)
            _wait_output(tmp_path / "observer.out", "two", timeout=20)
        finally:
            # Before the members stop: a member waits for its open streams when stopping.
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for out in outputs.values():
                out.close()
    observed = _read(tmp_path / "observer.out").split("\n")
    values = [line for line in observed if line in ("one", "two")]
    assert values == ["one", "two"]
