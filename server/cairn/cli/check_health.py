"""`cairn check health`: does each endpoint commit a linearizable read right now?

The same test as `etcdctl endpoint health`: a linearizable Range of the key "health" through
the endpoint, which succeeds only when that member sees a leader that still holds a quorum.
It ships with the server so a deployment can wait for a member (and check the others before
restarting one) on the host itself, with the host's own client certificate, without etcdctl
or access to the other members' client ports.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import KVStub

DEFAULT_TIMEOUT_S = 5.0
HEALTH_KEY = b"health"


def _credentials(args: argparse.Namespace) -> grpc.ChannelCredentials:
    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(args.cacert),
        private_key=read(args.key),
        certificate_chain=read(args.cert),
    )


def check(endpoint: str, args: argparse.Namespace) -> tuple[bool, str]:
    """(healthy, what to print) for one endpoint URL."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    target = parts.netloc
    started = time.perf_counter()
    if parts.scheme == "https":
        channel = grpc.secure_channel(target, _credentials(args))
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        try:
            KVStub(channel).Range(pb.RangeRequest(key=HEALTH_KEY), timeout=args.timeout)
        except grpc.RpcError as error:
            # Permission denied still proves a committed round trip through Raft (as etcdctl).
            if isinstance(error, grpc.Call) and error.code() != grpc.StatusCode.PERMISSION_DENIED:
                return False, f"{endpoint} is unhealthy: failed to commit proposal: " + (
                    f"{error.code().name}: {error.details()}"
                )
    took_ms = (time.perf_counter() - started) * 1000
    return True, f"{endpoint} is healthy: successfully committed proposal: took = {took_ms:.1f}ms"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoints", required=True, help="comma-separated client URLs (https://host:2379)"
    )
    parser.add_argument("--cacert", help="CA bundle that signed the members' server certs")
    parser.add_argument("--cert", help="client certificate (client CA)")
    parser.add_argument("--key", help="the client certificate's private key")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for each endpoint (default: {DEFAULT_TIMEOUT_S:g})",
    )


def main(args: argparse.Namespace) -> int:
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    if not endpoints:
        print("cairn check health: --endpoints is empty", file=sys.stderr)
        return 2
    try:
        results = [check(endpoint, args) for endpoint in endpoints]
    except OSError as error:
        print(f"cairn check health: {error}", file=sys.stderr)
        return 2
    for healthy, line in results:
        print(line, file=sys.stdout if healthy else sys.stderr)
    if not all(healthy for healthy, _ in results):
        print("Error: unhealthy cluster", file=sys.stderr)
        return 1
    return 0
