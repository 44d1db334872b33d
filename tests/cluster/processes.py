"""A cairn cluster of real `cairn serve` processes on loopback, for etcdctl-level tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.etcdctl import run_etcdctl

_LEADER_LINE = re.compile(r"leader is now ([0-9a-f]+)")
_IDENTITY_LINE = re.compile(r"member (\S+) \(([0-9a-f]+)\)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ClusterProcess:
    """One member: its flags, its process, its log."""

    def __init__(
        self,
        base: Path,
        name: str,
        initial_cluster: str,
        client: int,
        peer: int,
        *,
        scheme: str = "http",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.client_endpoint = f"127.0.0.1:{client}"
        self.log_path = base / f"{name}.log"
        client_url, peer_url = f"{scheme}://127.0.0.1:{client}", f"{scheme}://127.0.0.1:{peer}"
        self.argv = [
            sys.executable,
            "-m",
            "cairn",
            "serve",
            f"--name={name}",
            f"--data-dir={base / name}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={initial_cluster}",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            *extra_args,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def member_id(self) -> str | None:
        match = _IDENTITY_LINE.search(self.log_path.read_text(errors="replace"))
        return match.group(2) if match else None

    @property
    def believed_leader(self) -> str | None:
        found = _LEADER_LINE.findall(self.log_path.read_text(errors="replace"))
        return found[-1] if found else None


class ProcessCluster:
    """Three members started together; helpers find the leader and wait for agreement."""

    def __init__(
        self,
        base: Path,
        names: tuple[str, ...] = ("m1", "m2", "m3"),
        *,
        tls_args: Callable[[str], list[str]] | None = None,
        ctl_flags: tuple[str, ...] = (),
    ) -> None:
        """``tls_args(name)``, when given, are that member's TLS flags: every URL is https then;
        ``ctl_flags`` are the etcdctl TLS flags the helpers probe with."""
        scheme = "http" if tls_args is None else "https"
        ports = {name: (free_port(), free_port()) for name in names}
        initial = ",".join(f"{n}={scheme}://127.0.0.1:{peer}" for n, (_, peer) in ports.items())
        self.ctl_flags = ctl_flags
        self.members = {
            name: ClusterProcess(
                base,
                name,
                initial,
                client,
                peer,
                scheme=scheme,
                extra_args=tuple(tls_args(name)) if tls_args else (),
            )
            for name, (client, peer) in ports.items()
        }

    def __enter__(self) -> ProcessCluster:
        for member in self.members.values():
            member.start()
        self.wait_for_leader()
        return self

    def __exit__(self, *exc: object) -> None:
        for member in self.members.values():
            member.stop()

    def running(self) -> list[ClusterProcess]:
        return [m for m in self.members.values() if m.process and m.process.poll() is None]

    def endpoints(self) -> str:
        return ",".join(m.client_endpoint for m in self.running())

    def wait_for_leader(self, timeout: float = 30.0) -> ClusterProcess:
        """The member every running member names as leader (by the member's own log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            beliefs = {m.believed_leader for m in self.running()}
            if len(beliefs) == 1 and None not in beliefs:
                (leader_id,) = beliefs
                for member in self.running():
                    serving = (
                        run_etcdctl(
                            member.client_endpoint,
                            ["get", "probe"],
                            extra_global_flags=self.ctl_flags,
                        ).returncode
                        == 0
                    )
                    if member.member_id == leader_id and serving:
                        return member
            time.sleep(0.1)
        logs = "\n".join(
            m.log_path.read_text(errors="replace")[-2000:] for m in self.members.values()
        )
        raise AssertionError(f"no agreed leader within {timeout}s\n{logs}")
