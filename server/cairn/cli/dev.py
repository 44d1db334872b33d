"""`cairn dev` (what `make cluster` runs): a local cluster on loopback for trying cairn out.

Each member is its own `cairn serve` process, so an operator can kill -9 one and watch the
others elect a new leader, exactly as on real machines. Ctrl-C (or SIGTERM) stops them all.
By default `cairn pki` certificates in <dir>/pki/ secure both ports (client certificates
required), as an operator should run them; --no-tls runs them in plaintext. A directory keeps
the transport it was first started with (the members stored their peer URLs in their logs),
so switching is refused with a hint instead of leaving members that cannot reach each other.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cairn import pki
from cairn.cli import config as serve_config
from cairn.cli import dev_monitoring


def _ports(index: int, client_port: int) -> tuple[int, int]:
    """Client ports 2379, 12379, 22379, ... (10000 apart); each peer port is one above."""
    client = client_port + 10_000 * index
    return client, client + 1


def metrics_url(client: int) -> str:
    """Each member's /metrics and /health: plain http two above its client port (2381, as
    kubeadm sets up etcd), so curl and Prometheus reach it without certificates."""
    return f"http://127.0.0.1:{client + 2}"


def _dev_pki(root: Path, names: list[str]) -> pki.Layout:
    """The dev cluster's CAs and certificates, created once and reused by later runs."""
    layout = pki.Layout(root)
    if not layout.client_ca[0].exists():
        pki.init(root)
    for name in names:
        if not layout.member_peer(name)[0].exists():
            pki.issue_member(root, name, ["localhost"], ["127.0.0.1"])
    if not layout.client("admin")[0].exists():
        pki.issue_client(root, "admin")
    return layout


def _tls_flags(layout: pki.Layout, name: str) -> list[str]:
    (cert, key), (peer_cert, peer_key) = layout.member_server(name), layout.member_peer(name)
    return [
        f"--cert-file={cert}",
        f"--key-file={key}",
        f"--trusted-ca-file={layout.client_ca[0]}",
        "--client-cert-auth",
        f"--peer-cert-file={peer_cert}",
        f"--peer-key-file={peer_key}",
        f"--peer-trusted-ca-file={layout.peer_ca[0]}",
        "--peer-client-cert-auth",
    ]


TRANSPORT_FILE = "transport"
"""In the dev directory: `https` or `http`, the scheme its members were first started with."""


def recorded_scheme(base: Path, names: list[str]) -> str | None:
    """The scheme a dev directory's members use, or None for a directory without members.

    Directories made before the marker file existed are recognised by what they hold: a pki/
    folder meant --tls, member data without one meant plaintext (the old default)."""
    marker = base / TRANSPORT_FILE
    if marker.exists():
        return marker.read_text().strip()
    if not any((base / name).exists() for name in names):
        return None
    return "https" if (base / "pki").exists() else "http"


def main(args: argparse.Namespace) -> int:
    count = args.members
    if count not in (1, 3, 5):
        print("cairn dev: --members must be 1, 3 or 5", file=sys.stderr)
        return 2
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    names = [f"m{i + 1}" for i in range(count)]
    ports = {name: _ports(i, args.client_port) for i, name in enumerate(names)}
    scheme = "https" if args.tls else "http"
    recorded = recorded_scheme(base, names)
    if recorded is not None and recorded != scheme:
        wanted, kept = ("TLS", "plaintext") if args.tls else ("plaintext", "TLS")
        flag = "--no-tls (make cluster PLAINTEXT=1)" if args.tls else "--tls (make cluster)"
        print(
            f"cairn dev: {base}/ holds a cluster started with {kept} peer URLs and cannot switch "
            f"to {wanted}; start it with {flag}, or remove {base}/ for a fresh cluster",
            file=sys.stderr,
        )
        return 2
    (base / TRANSPORT_FILE).write_text(scheme + "\n")
    layout = _dev_pki(base.resolve() / "pki", names) if args.tls else None
    initial = ",".join(f"{n}={scheme}://127.0.0.1:{peer}" for n, (_, peer) in ports.items())
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name, (client, peer) in ports.items():
        flags = serve_config.single_member_flags(
            name, str(base / name), f"{scheme}://127.0.0.1:{client}", f"{scheme}://127.0.0.1:{peer}"
        )
        flags[-1] = f"--initial-cluster={initial}"
        flags.append(f"--listen-metrics-urls={metrics_url(client)}")
        if layout is not None:
            flags += _tls_flags(layout, name)
        log = open(base / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its life
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "cairn", "serve", *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("ETCD_")},
        )
    monitoring = dev_monitoring.start(
        base,
        [metrics_url(client).removeprefix("http://") for client, _ in ports.values()],
        args.prometheus_port,
        args.alertmanager_port,
    )
    endpoints = ",".join(f"127.0.0.1:{client}" for client, _ in ports.values())
    lines = [f"cairn dev: {count} member(s) on loopback, data and logs in {base}/"]
    for name, (client, peer) in ports.items():
        lines.append(
            f"  {name}: client {scheme}://127.0.0.1:{client}  peer {scheme}://127.0.0.1:{peer}  "
            f"pid {children[name].pid}  log {base / name}.log"
        )
        lines.append(
            f"      metrics {metrics_url(client)}/metrics  health {metrics_url(client)}/health"
        )
    lines += monitoring.lines
    tls = ""
    if layout is not None:
        admin_cert, admin_key = layout.client("admin")
        lines.append(f"  TLS on both ports; certificates from `cairn pki` in {layout.root}/")
        tls = f" --cacert={layout.client_ca[0]} --cert={admin_cert} --key={admin_key}"
        lines.append(f"  export ETCDCTL_CACERT={layout.client_ca[0]}")
        lines.append(f"  export ETCDCTL_CERT={admin_cert} ETCDCTL_KEY={admin_key}")
    lines += [
        f"  export ETCDCTL_API=3 ENDPOINTS={endpoints}",
        "  etcdctl --endpoints=$ENDPOINTS put foo bar",
        "  etcdctl --endpoints=$ENDPOINTS get foo -w json",
        f"  (or, without the ETCDCTL_* variables: etcdctl{tls} --endpoints=$ENDPOINTS ...)"
        if tls
        else "",
        "  stop: Ctrl-C",
    ]
    lines = [line for line in lines if line]
    print("\n".join(lines), flush=True)

    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    reported: set[str] = set()
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None and name not in reported:
                reported.add(name)
                print(f"cairn dev: {name} exited with {child.returncode} (see its log)", flush=True)
        if len(reported) == len(children):
            break
        time.sleep(0.2)
    monitoring.stop()
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    print("cairn dev: stopped", flush=True)
    return 0
