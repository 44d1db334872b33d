"""Fresh cairn/etcd server processes on loopback for a benchmark run, or a running one."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cairn.cli.config import single_member_flags

# ---- servers -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_loopback(endpoint: str) -> str:
    """Accept HOST:PORT only when every address HOST resolves to is loopback."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--endpoint {endpoint!r}: expected HOST:PORT")
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP)
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise ValueError(f"--endpoint {endpoint!r}: the bench only talks to loopback addresses")
    return endpoint


@dataclass
class Server:
    """A server process this bench started, and where it writes its data and log."""

    name: str
    endpoint: str
    process: subprocess.Popen[bytes] | None
    log_path: Path | None
    known_pid: int | None = None  # for a server we did not start (--endpoint-pid)
    # Cluster mode: every member's client endpoint (`endpoint` is the leader's).
    members: tuple[str, ...] = ()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else self.known_pid


def _server_flags(name: str, data_dir: Path) -> tuple[list[str], str]:
    client_port, peer_port = _free_port(), _free_port()
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    flags = [*single_member_flags(name, str(data_dir), client, peer), "--log-level=warn"]
    return flags, f"127.0.0.1:{client_port}"


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    """Wait until a linearizable Range succeeds, i.e. the member has a leader and serves."""
    import grpc

    from cairn.proto import rpc_pb2 as pb
    from cairn.proto.rpc_pb2_grpc import KVStub

    deadline = time.monotonic() + timeout
    last: grpc.RpcError | None = None
    with grpc.insecure_channel(server.endpoint) as channel:
        stub = KVStub(channel)
        while time.monotonic() < deadline:
            if server.process is not None and server.process.poll() is not None:
                break
            try:
                stub.Range(pb.RangeRequest(key=b"/cairn-bench-ready"), timeout=2.0)
                return
            except grpc.RpcError as error:
                last = error
                time.sleep(0.1)
    reason = f"{last.code().name}: {last.details()}" if isinstance(last, grpc.Call) else "exited"
    tail = ""
    if server.log_path is not None and server.log_path.exists():
        tail = "\n".join(server.log_path.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"{server.name} at {server.endpoint} did not become ready: {reason}\n{tail}")


def existing_server(name: str, endpoint: str, pid: int | None) -> Server:
    """A server someone else runs; checked to answer before any load is sent."""
    server = Server(name, endpoint, None, None, pid)
    _wait_ready(server, timeout=10.0)
    return server


@contextlib.contextmanager
def started_server(name: str, command: list[str], workdir: Path) -> Iterator[Server]:
    """Start a fresh server in `workdir`, yield it once it serves, and always stop it."""
    data_dir = workdir / f"{name}.data"
    flags, endpoint = _server_flags(name, data_dir)
    extra = ["--logger=zap"] if name == "etcd" else []
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, *flags, *extra],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the bench, which then stops the server
        )
    server = Server(name, endpoint, process, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


# ---- clusters ------------------------------------------------------------------------------


def _leader_endpoint(endpoints: list[str], timeout: float = 30.0) -> str:
    """The client endpoint of the member that reports itself leader (`etcdctl endpoint status`)."""
    etcdctl = shutil.which("etcdctl") or "/usr/bin/etcdctl"
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            done = subprocess.run(
                [etcdctl, f"--endpoints={','.join(endpoints)}", "endpoint", "status", "-w", "json"],
                capture_output=True,
                timeout=10,
                env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            )
            for entry in json.loads(done.stdout or b"[]"):
                status = entry.get("Status", {})
                if status.get("leader") and status["header"]["member_id"] == status["leader"]:
                    return str(entry["Endpoint"])
            last = done.stderr.decode(errors="replace").strip()[-300:]
        except (subprocess.TimeoutExpired, ValueError, KeyError) as error:
            last = repr(error)
        time.sleep(0.3)
    raise RuntimeError(f"no member of {endpoints} reported itself leader: {last}")


@contextlib.contextmanager
def started_cluster(name: str, command: list[str], workdir: Path, size: int) -> Iterator[Server]:
    """Start a fresh `size`-member cluster; yield the leader as the Server, always stop all."""
    names = [f"{name}{i}" for i in range(size)]
    clients = {m: f"127.0.0.1:{_free_port()}" for m in names}
    peers = {m: f"http://127.0.0.1:{_free_port()}" for m in names}
    initial = ",".join(f"{m}={peers[m]}" for m in names)
    extra = ["--logger=zap"] if name == "etcd" else []
    members: dict[str, Server] = {}
    try:
        for m in names:
            url = f"http://{clients[m]}"
            flags = [
                f"--name={m}",
                f"--data-dir={workdir / f'{m}.data'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peers[m]}",
                f"--initial-advertise-peer-urls={peers[m]}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                "--log-level=warn",
            ]
            log_path = workdir / f"{m}.log"
            with log_path.open("wb") as log_file:
                process = subprocess.Popen(
                    [*command, *flags, *extra],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            members[m] = Server(m, clients[m], process, log_path)
        for member in members.values():
            _wait_ready(member, timeout=60.0)
        leader = _leader_endpoint(list(clients.values()))
        chosen = next(s for s in members.values() if s.endpoint == leader.removeprefix("http://"))
        yield Server(
            name, chosen.endpoint, chosen.process, chosen.log_path, None, tuple(clients.values())
        )
    finally:
        for member in members.values():
            if member.process is not None and member.process.poll() is None:
                member.process.send_signal(signal.SIGTERM)
        for member in members.values():
            if member.process is None:
                continue
            try:
                member.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                member.process.kill()
                member.process.wait(timeout=5)


def check_perf(server: Server, load: str = "s", timeout: float = 120.0) -> list[str]:
    """`etcdctl check perf --load=<load>` against every member; its PASS/FAIL verdict lines."""
    etcdctl = shutil.which("etcdctl") or "/usr/bin/etcdctl"
    endpoints = ",".join(server.members or (server.endpoint,))
    try:
        done = subprocess.run(
            [etcdctl, f"--endpoints={endpoints}", "check", "perf", f"--load={load}"],
            capture_output=True,
            timeout=timeout,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        )
    except subprocess.TimeoutExpired:
        return [f"check perf --load={load}: no verdict within {timeout:.0f} s (timed out)"]
    text = (done.stdout + done.stderr).decode(errors="replace")
    # The progress bar redraws with \r; a failed check prints e.g. "Slowest request took too
    # long: ...s" without a FAIL prefix, so keep those phrasings too.
    markers = ("PASS", "FAIL", "too long", "too high", "too low", "rror")
    lines = [
        line.split("\r")[-1].strip()
        for line in text.splitlines()
        if any(marker in line.split("\r")[-1] for marker in markers)
    ]
    return lines or [f"check perf: exit {done.returncode}, no verdict: {text.strip()[-300:]}"]
