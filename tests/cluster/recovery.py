"""Helpers for the disaster-recovery tests: a dataset that exercises every kind of state a
backup must carry, and what a member shows of it through etcdctl."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.processes import ClusterProcess
from tests.cluster.test_membership_etcdctl import ctl
from tests.support.etcdctl import run_etcdctl

Row = tuple[str, str, int, int, int, int]  # key, value, create rev, mod rev, version, lease


def write_dataset(endpoints: str) -> None:
    """Puts, overwrites, a delete, a multi-key txn, keys on a lease, then a compaction in the
    middle of the history and more writes after it."""
    for i in range(20):
        ctl(endpoints, "put", f"/data/{i:02d}", f"first-{i}")
    for i in range(0, 20, 3):
        ctl(endpoints, "put", f"/data/{i:02d}", f"second-{i}")
    ctl(endpoints, "del", "/data/05")
    txn = run_etcdctl(endpoints, ["txn"], stdin="\nput /txn/a A\nput /txn/b B\nput /txn/c C\n\n\n")
    assert txn.returncode == 0 and txn.stdout.startswith("SUCCESS"), txn
    lease = ctl(endpoints, "lease", "grant", "600").split()[1]
    ctl(endpoints, "put", "/leased/one", "L1", f"--lease={lease}")
    ctl(endpoints, "put", "/leased/two", "L2", f"--lease={lease}")
    middle = revision(endpoints)
    for i in range(5):
        ctl(endpoints, "put", "/data/00", f"after-compaction-{i}")
    ctl(endpoints, "compact", str(middle - 3), "--physical")
    ctl(endpoints, "put", "/last", "written-after-the-compaction")


def revision(endpoint: str) -> int:
    return int(json.loads(ctl(endpoint, "get", "x", "-w", "json"))["header"]["revision"])


@dataclass(frozen=True)
class MemberView:
    """Everything of the keyspace a member serves (serializable: that member's own state)."""

    rows: tuple[Row, ...]
    revision: int
    compact_revision: int
    hash_kv: int
    leases: tuple[str, ...]


def view(endpoint: str) -> MemberView:
    listing = json.loads(ctl(endpoint, "get", "", "--prefix", "--consistency=s", "-w", "json"))
    rows = tuple(
        (
            base64.b64decode(kv["key"]).decode(),
            base64.b64decode(kv.get("value", "")).decode(),
            int(kv["create_revision"]),
            int(kv["mod_revision"]),
            int(kv["version"]),
            int(kv.get("lease", 0)),
        )
        for kv in listing.get("kvs", [])
    )
    rev = int(listing["header"]["revision"])
    hashed = json.loads(ctl(endpoint, "endpoint", "hashkv", f"--rev={rev}", "-w", "json"))
    leases = json.loads(ctl(endpoint, "lease", "list", "-w", "json")).get("leases") or []
    return MemberView(
        rows=rows,
        revision=rev,
        compact_revision=int(hashed[0]["HashKV"]["compact_revision"]),
        hash_kv=int(hashed[0]["HashKV"]["hash"]),
        leases=tuple(sorted(str(lease["id"]) for lease in leases)),
    )


def wait_view(endpoint: str, expected: MemberView, timeout: float = 30.0) -> MemberView:
    """Until the member serves `expected` (a new member catches up asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = view(endpoint)
        except AssertionError:
            seen = None
        if seen == expected or time.monotonic() > deadline:
            assert seen == expected
            return seen
        time.sleep(0.3)


def cairn(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `cairn` command line (the installed package, as an operator would)."""
    return subprocess.run(
        [sys.executable, "-m", "cairn", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def snapshot_save(endpoint: str, path: Path) -> None:
    saved = run_etcdctl(endpoint, ["snapshot", "save", str(path)])
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout == f"Snapshot saved at {path}\n"


def started(member: ClusterProcess) -> ClusterProcess:
    """Start `member` and wait until it answers a serializable read."""
    member.start()
    deadline = time.monotonic() + 30
    while True:
        probe = run_etcdctl(member.client_endpoint, ["get", "probe", "--consistency=s"])
        if probe.returncode == 0:
            return member
        assert member.process is not None and member.process.poll() is None, (
            member.log_path.read_text(errors="replace")[-3000:]
        )
        assert time.monotonic() < deadline, probe.stderr
        time.sleep(0.2)
