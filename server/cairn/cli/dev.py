"""`cairn dev` (what `make cluster` runs): a local cluster on loopback for trying cairn out.

Each member is its own `cairn serve` process, so an operator can kill -9 one and watch the
others elect a new leader, exactly as on real machines. Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cairn.cli import config as serve_config


def _ports(index: int, client_port: int) -> tuple[int, int]:
    """Client ports 2379, 12379, 22379, ... (10000 apart); each peer port is one above."""
    client = client_port + 10_000 * index
    return client, client + 1


def main(args: argparse.Namespace) -> int:
    count = args.members
    if count not in (1, 3, 5):
        print("cairn dev: --members must be 1, 3 or 5", file=sys.stderr)
        return 2
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    names = [f"m{i + 1}" for i in range(count)]
    ports = {name: _ports(i, args.client_port) for i, name in enumerate(names)}
    initial = ",".join(f"{n}=http://127.0.0.1:{peer}" for n, (_, peer) in ports.items())
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name, (client, peer) in ports.items():
        flags = serve_config.single_member_flags(
            name, str(base / name), f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        )
        flags[-1] = f"--initial-cluster={initial}"
        log = open(base / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its life
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "cairn", "serve", *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("ETCD_")},
        )
    endpoints = ",".join(f"127.0.0.1:{client}" for client, _ in ports.values())
    lines = [f"cairn dev: {count} member(s) on loopback, data and logs in {base}/"]
    for name, (client, peer) in ports.items():
        lines.append(
            f"  {name}: client http://127.0.0.1:{client}  peer http://127.0.0.1:{peer}  "
            f"pid {children[name].pid}  log {base / name}.log"
        )
    lines += [
        f"  export ETCDCTL_API=3 ENDPOINTS={endpoints}",
        "  etcdctl --endpoints=$ENDPOINTS put foo bar",
        "  etcdctl --endpoints=$ENDPOINTS get foo -w json",
        "  stop: Ctrl-C",
    ]
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
