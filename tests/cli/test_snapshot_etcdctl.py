"""Snapshots side by side: `etcdctl snapshot save` against a real etcd 3.4.23 and against
`cairn serve`, then `etcdctl snapshot status|restore` on etcd's file next to
`cairn snapshot status|restore` on cairn's.

The files differ by design (a bolt database vs cairn's backup format), so values differ; what
etcdctl prints while saving, the output formats of status, and the refusals of restore are
compared as they come out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import grpc
import pytest
from tests.support.etcdctl import etcdctl_path, run_etcdctl
from tests.support.servers import ServerProcess, etcd_path, start_server

from cairn.cli.snapshot import render_status
from cairn.member.backup import BackupFile, BackupStatus
from cairn.member.identity import Identity
from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc
from cairn.wal import WAL

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(
        etcdctl_path() is None or etcd_path() is None,
        reason="needs etcd and etcdctl (Debian etcd-server, etcd-client)",
    ),
    pytest.mark.timeout(120),
]

# etcdctl's JSON log fields whose values differ between any two runs.
_VOLATILE = ("ts", "took", "size", "endpoint", "path")


@dataclass
class Saved:
    server: ServerProcess
    path: Path
    exit_code: int
    stdout: str
    stderr: str


def _cairn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _etcdctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(etcdctl_path()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Saved]]:
    """The same writes on both servers, then `etcdctl snapshot save` from each."""
    base = tmp_path_factory.mktemp("snapshots")
    servers = {kind: start_server(kind, base / kind) for kind in ("etcd", "cairn")}
    try:
        result = {}
        for kind, server in servers.items():
            for i in range(30):
                assert run_etcdctl(server.client_url, ["put", f"k{i}", f"v{i}"]).returncode == 0
            path = base / kind / "backup.db"
            ran = run_etcdctl(server.client_url, ["snapshot", "save", str(path)])
            result[kind] = Saved(server, path, ran.returncode, ran.stdout, ran.stderr)
        yield result
    finally:
        for server in servers.values():
            server.stop()


def _log_shape(stderr: str) -> list[dict[str, object]]:
    """etcdctl's log lines with the values that differ between any two runs masked."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [{k: ("<masked>" if k in _VOLATILE else v) for k, v in line.items()} for line in lines]


def test_snapshot_save_prints_what_it_prints_against_etcd(saved: dict[str, Saved]) -> None:
    etcd, cairn = saved["etcd"], saved["cairn"]
    assert (cairn.exit_code, etcd.exit_code) == (0, 0)
    assert cairn.stdout.replace(str(cairn.path), "<path>") == etcd.stdout.replace(
        str(etcd.path), "<path>"
    )
    assert cairn.stdout == f"Snapshot saved at {cairn.path}\n"
    assert _log_shape(cairn.stderr) == _log_shape(etcd.stderr)
    assert len(_log_shape(cairn.stderr)) == 6


def test_snapshot_save_to_two_endpoints_is_refused_as_by_etcdctl(
    saved: dict[str, Saved], tmp_path: Path
) -> None:
    outcomes = []
    for kind in ("etcd", "cairn"):
        url = saved[kind].server.client_url
        ran = run_etcdctl(f"{url},{url}", ["snapshot", "save", str(tmp_path / f"{kind}.db")])
        outcomes.append((ran.returncode, ran.stderr.replace(url, "<url>")))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("write_out", ["simple", "table", "json", "fields"])
def test_status_output_formats_are_etcdctls(saved: dict[str, Saved], write_out: str) -> None:
    """etcd's status values, rendered by cairn, print exactly as etcdctl prints them."""
    etcd_file = str(saved["etcd"].path)
    values = json.loads(_etcdctl("snapshot", "status", etcd_file, "-w", "json").stdout)
    as_cairn = BackupStatus(
        hash=values["hash"],
        revision=values["revision"],
        total_key=values["totalKey"],
        total_size=values["totalSize"],
        meta=BackupFile(str(saved["cairn"].path)).meta,
    )
    expected = _etcdctl("snapshot", "status", etcd_file, "-w", write_out)
    assert expected.returncode == 0
    assert render_status(as_cairn, write_out) + "\n" == expected.stdout


def test_status_of_a_cairn_backup_shows_its_revision_and_size(saved: dict[str, Saved]) -> None:
    cairn = saved["cairn"]
    shown = _cairn("snapshot", "status", str(cairn.path), "-w", "json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    header = json.loads(run_etcdctl(cairn.server.client_url, ["get", "k0", "-w", "json"]).stdout)[
        "header"
    ]
    assert status["revision"] == header["revision"] == 31
    assert status["totalSize"] == cairn.path.stat().st_size - 32
    simple = _cairn("snapshot", "status", str(cairn.path))
    assert re.fullmatch(r"[0-9a-f]+, 31, \d+, \d+(\.\d)? kB\n", simple.stdout), simple.stdout


@pytest.mark.parametrize(
    "args",
    [["-w", "protobuf"], ["-w", "yaml"], []],
    ids=["protobuf", "unknown-format", "no-file"],
)
def test_status_refusals_match_etcdctl(saved: dict[str, Saved], args: list[str]) -> None:
    files = {k: [str(saved[k].path)] if args else [] for k in ("etcd", "cairn")}
    etcd = _etcdctl("snapshot", "status", *files["etcd"], *args)
    cairn = _cairn("snapshot", "status", *files["cairn"], *args)
    assert (cairn.returncode, cairn.stdout) == (etcd.returncode, etcd.stdout)
    assert cairn.stderr.splitlines()[-1] == etcd.stderr.splitlines()[-1]


def _restore_flags(tmp_path: Path, kind: str, **changes: str) -> list[str]:
    flags = {
        "name": "r1",
        "initial-cluster": "r1=http://127.0.0.1:41012,r2=http://127.0.0.1:41022",
        "initial-cluster-token": "tok",
        "initial-advertise-peer-urls": "http://127.0.0.1:41012",
        "data-dir": str(tmp_path / kind),
    }
    flags.update(changes)
    return [f"--{k}={v}" for k, v in flags.items()]


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "zz"},
        {"initial-advertise-peer-urls": "http://127.0.0.1:41099"},
        {"initial-cluster": "r1=http://127.0.0.1:41012,r2=http://127.0.0.1:41012"},
    ],
    ids=["name-not-in-cluster", "advertised-url-not-in-cluster", "duplicate-url"],
)
def test_restore_refuses_a_bad_configuration_with_etcdctls_message(
    saved: dict[str, Saved], tmp_path: Path, changes: dict[str, str]
) -> None:
    etcd = _etcdctl(
        "snapshot", "restore", str(saved["etcd"].path), *_restore_flags(tmp_path, "e", **changes)
    )
    cairn = _cairn(
        "snapshot", "restore", str(saved["cairn"].path), *_restore_flags(tmp_path, "c", **changes)
    )
    assert cairn.returncode == etcd.returncode == 1
    assert cairn.stderr.splitlines()[-1] == etcd.stderr.splitlines()[-1]
    assert not (tmp_path / "c").exists()


def _damaged(source: Path, target: Path, damage: str) -> Path:
    data = bytearray(source.read_bytes())
    if damage == "flipped":
        data[100] ^= 0xFF
    else:
        del data[-32:]
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("damage", ["flipped", "missing-hash"])
def test_restore_refuses_a_damaged_snapshot_as_etcdctl_does(
    saved: dict[str, Saved], tmp_path: Path, damage: str
) -> None:
    shapes = []
    for kind, tool in (("etcd", _etcdctl), ("cairn", _cairn)):
        bad = _damaged(saved[kind].path, tmp_path / f"{kind}.db", damage)
        ran = tool("snapshot", "restore", str(bad), *_restore_flags(tmp_path, kind))
        last = ran.stderr.splitlines()[-1]
        shapes.append((ran.returncode, re.sub(r"\[[0-9 ]+\]", "[digest]", last)))
    assert shapes[0] == shapes[1]
    assert not (tmp_path / "cairn").exists()


def test_status_refuses_a_damaged_snapshot(saved: dict[str, Saved], tmp_path: Path) -> None:
    """etcdctl's status does not check a snapshot (it opens the bolt file read-only and
    reports); cairn's checks the digest and every record first."""
    for damage in ("flipped", "missing-hash"):
        bad = _damaged(saved["cairn"].path, tmp_path / f"{damage}.db", damage)
        shown = _cairn("snapshot", "status", str(bad))
        assert shown.returncode == 1
        assert shown.stdout == ""
        assert shown.stderr.startswith("Error: ")
    cut = tmp_path / "cut.db"
    whole = saved["cairn"].path.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    shown = _cairn("snapshot", "status", str(cut))
    assert (shown.returncode, shown.stdout) == (1, "")
    assert "truncated" in shown.stderr


def _snapshot_messages(server: ServerProcess) -> list[pb.SnapshotResponse]:
    with grpc.insecure_channel(f"127.0.0.1:{server.client_port}") as channel:
        stub = rpc_pb2_grpc.MaintenanceStub(channel)
        return list(stub.Snapshot(pb.SnapshotRequest(), timeout=30))


def _framing(messages: list[pb.SnapshotResponse]) -> dict[str, object]:
    """What a client can rely on, independent of the content: no headers, 32 KiB blobs
    counting down to 0, then the SHA-256 of everything before it, with remaining 0."""
    content = b"".join(m.blob for m in messages[:-1])
    sent = 0
    countdown = []
    for m in messages[:-1]:
        sent += len(m.blob)
        countdown.append(m.remaining_bytes == len(content) - sent)
    return {
        "headers": [m.HasField("header") for m in messages],
        "full_blobs": all(len(m.blob) == 32 * 1024 for m in messages[:-2]),
        "countdown": all(countdown),
        "last": (messages[-1].remaining_bytes, messages[-1].blob == sha256(content).digest()),
        "pages": (len(content) % 512, len(messages[-1].blob)),
    }


def test_the_snapshot_stream_is_framed_as_etcds(saved: dict[str, Saved]) -> None:
    etcd = _framing(_snapshot_messages(saved["etcd"].server))
    cairn = _framing(_snapshot_messages(saved["cairn"].server))
    assert cairn == etcd
    assert etcd["last"] == (0, True)


def test_restore_refuses_a_truncated_snapshot_and_leaves_no_data_dir(
    saved: dict[str, Saved], tmp_path: Path
) -> None:
    whole = saved["cairn"].path.read_bytes()
    cut = tmp_path / "cut.db"
    cut.write_bytes(whole[: len(whole) // 2])
    ran = _cairn("snapshot", "restore", str(cut), *_restore_flags(tmp_path, "cairn"))
    assert (ran.returncode, ran.stdout) == (1, "")
    assert ran.stderr.splitlines()[-1].startswith("Error: ")
    assert "truncated" in ran.stderr
    assert not (tmp_path / "cairn").exists()


def test_restore_gives_the_member_and_cluster_ids_etcdctl_restore_gives(
    saved: dict[str, Saved], tmp_path: Path
) -> None:
    """The same --name, --initial-cluster and token: the same IDs as etcd's restore."""
    etcd = _etcdctl(
        "snapshot", "restore", str(saved["etcd"].path), *_restore_flags(tmp_path, "etcd")
    )
    assert etcd.returncode == 0, etcd.stderr
    added = [json.loads(line) for line in etcd.stderr.splitlines() if '"added member"' in line]
    etcd_cluster = {entry["cluster-id"] for entry in added}
    etcd_r1 = next(
        e["added-peer-id"] for e in added if e["added-peer-peer-urls"] == ["http://127.0.0.1:41012"]
    )
    cairn = _cairn(
        "snapshot", "restore", str(saved["cairn"].path), *_restore_flags(tmp_path, "cairn")
    )
    assert cairn.returncode == 0, cairn.stderr
    wal, replay = WAL.open(tmp_path / "cairn" / "member" / "wal")
    wal.close()
    identity = Identity.from_bytes(replay.metadata)
    assert etcd_cluster == {format(identity.cluster_id, "x")}
    assert etcd_r1 == format(identity.member_id, "x")
