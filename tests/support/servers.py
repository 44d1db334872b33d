"""Start, wait for, stop, kill and restart single-member etcd or cairn servers for tests.

Both are started with the same etcd flags on free loopback ports in their own directory:

    <base>/data         --data-dir
    <base>/server.log   stdout and stderr of every run (appended across restarts)

A stopped or killed server can be started again on the same data dir and ports, which is
what durability tests need (`kill()` is SIGKILL, no chance to flush).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tests.support.etcdctl import etcdctl_path, run_etcdctl

ServerKind = Literal["etcd", "cairn"]

LOOPBACK = "127.0.0.1"
DEFAULT_START_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 10.0
_PROBE_KEY = "cairn-tests-readiness-probe"


class ServerStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


def etcd_path() -> str | None:
    """The etcd server binary on PATH, or None when it is not installed."""
    return shutil.which("etcd")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def server_command(kind: ServerKind) -> list[str]:
    """The program (without flags) that runs a server of this kind."""
    if kind == "etcd":
        binary = etcd_path()
        if binary is None:
            raise FileNotFoundError("etcd is not installed (Debian package etcd-server)")
        return [binary]
    return [sys.executable, "-m", "cairn", "serve"]


def _server_env() -> dict[str, str]:
    # ETCD_* variables are flags to etcd (and to cairn): never inherit them by accident.
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}


class ServerProcess:
    """One single-member server (etcd or cairn) on loopback ports in its own directory."""

    def __init__(
        self,
        kind: ServerKind,
        base_dir: Path,
        *,
        name: str = "default",
        extra_args: Sequence[str] = (),
        client_port: int | None = None,
        peer_port: int | None = None,
        scheme: str = "http",
        ctl_flags: Sequence[str] = (),
    ) -> None:
        self.kind: ServerKind = kind
        self.scheme = scheme
        """http, or https for a server started with TLS flags in extra_args (both ports)."""
        self.ctl_flags = tuple(ctl_flags)
        """etcdctl's TLS flags (--cacert, --cert, --key) for the readiness probe."""
        self.name = name
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "server.log"
        self.extra_args = tuple(extra_args)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def argv(self) -> list[str]:
        """The full command line; identical flags for etcd and cairn."""
        return [
            *server_command(self.kind),
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            f"{self.name}={self.peer_url}",
            *self.extra_args,
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> ServerProcess:
        """Spawn the server (again, on the same data dir and ports) and wait until it serves."""
        if self.running:
            raise RuntimeError(f"{self.kind} server {self.name} is already running")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} starting: {self.argv()}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=_server_env(),
                start_new_session=True,
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Poll with `etcdctl get` until it exits 0; fail early if the process dies."""
        if etcdctl_path() is None:
            raise FileNotFoundError("etcdctl is not installed (Debian package etcd-client)")
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise ServerStartError(
                    f"{self.kind} server exited with code {code} before serving\n{self._describe()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerStartError(
                    f"{self.kind} server did not serve `etcdctl get` within {timeout:.0f}s "
                    f"(last probe: {last.strip()!r})\n{self._describe()}"
                )
            probe = run_etcdctl(
                self.client_url,
                ["get", _PROBE_KEY],
                timeout=max(1.0, min(5.0, remaining)),
                extra_global_flags=["--dial-timeout=1s", "--command-timeout=2s", *self.ctl_flags],
            )
            if probe.returncode == 0:
                return
            last = probe.stderr or probe.stdout
            time.sleep(0.05)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after `timeout`. Returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL right away (a crash, for durability tests). Returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return proc.returncode

    def restart(self, timeout: float = DEFAULT_START_TIMEOUT) -> ServerProcess:
        """Stop gracefully and start again on the same data dir and ports."""
        self.stop()
        return self.start(timeout)

    # -- diagnostics -----------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log file)"
        return "\n".join(text.splitlines()[-lines:])

    def _describe(self) -> str:
        return (
            f"command: {' '.join(self.argv())}\n"
            f"log: {self.log_path}\n"
            f"--- last lines of the log ---\n{self.log_tail()}"
        )

    def __enter__(self) -> ServerProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServerProcess({self.kind!r}, {self.client_url}, pid={self.pid})"


def start_server(
    kind: ServerKind,
    base_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    timeout: float = DEFAULT_START_TIMEOUT,
    attempts: int = 3,
) -> ServerProcess:
    """Start a fresh server, retrying on new ports if a port was taken in the meantime."""
    for attempt in range(1, attempts + 1):
        server = ServerProcess(kind, base_dir, extra_args=extra_args)
        try:
            return server.start(timeout)
        except ServerStartError:
            taken = "address already in use" in server.log_tail(200).lower()
            if not taken or attempt == attempts:
                raise
            shutil.rmtree(server.data_dir, ignore_errors=True)
            server.log_path.rename(server.log_path.with_suffix(f".attempt{attempt}.log"))
    raise AssertionError("unreachable")
