"""A KV server that does nothing: the ceiling Python gRPC puts on any cairn member.

Why it exists: when `cairn bench` shows cairn far behind etcd, the first question is how much of
the gap is cairn's code and how much is the cost of serving a unary RPC from Python at all. This
server answers Put and Range instantly (no Raft, no WAL, no LevelDB) through the same kind of
gRPC server cairn uses, so benchmarking it with the same client gives that ceiling:

    .venv/bin/python benchmarks/null_kv_server.py --port 23999 &
    .venv/bin/cairn bench --endpoint 127.0.0.1:23999 --ops put,range --concurrency 1,16,128

`--mode sync` serves from a thread pool with the classic gRPC server instead of grpc.aio, to
compare the two server flavours. Loopback only; stop it with Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from concurrent import futures
from typing import Any

import grpc

from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import KVServicer, add_KVServicer_to_server


def _header(revision: int) -> pb.ResponseHeader:
    return pb.ResponseHeader(cluster_id=1, member_id=1, revision=revision, raft_term=2)


class AsyncNullKV(KVServicer):
    """grpc.aio flavour: what cairn's server does minus everything cairn adds."""

    def __init__(self) -> None:
        self.revision = 1

    async def Put(self, request: pb.PutRequest, context: Any) -> pb.PutResponse:
        self.revision += 1
        return pb.PutResponse(header=_header(self.revision))

    async def Range(self, request: pb.RangeRequest, context: Any) -> pb.RangeResponse:
        return pb.RangeResponse(header=_header(self.revision), count=0)


class SyncNullKV(KVServicer):
    """Thread-pool flavour of the same; the lock keeps the revision honest across threads."""

    def __init__(self) -> None:
        self.revision = 1
        self._lock = threading.Lock()

    def Put(self, request: pb.PutRequest, context: Any) -> pb.PutResponse:
        with self._lock:
            self.revision += 1
            return pb.PutResponse(header=_header(self.revision))

    def Range(self, request: pb.RangeRequest, context: Any) -> pb.RangeResponse:
        return pb.RangeResponse(header=_header(self.revision), count=0)


async def serve_aio(port: int) -> None:
    server = grpc.aio.server()
    add_KVServicer_to_server(AsyncNullKV(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"null KV server (grpc.aio) on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    await server.stop(grace=1)


def serve_sync(port: int, workers: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    add_KVServicer_to_server(SyncNullKV(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"null KV server (sync, {workers} threads) on 127.0.0.1:{port}", flush=True)
    stop.wait()
    server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("aio", "sync"), default="aio")
    parser.add_argument("--workers", type=int, default=32, help="threads for --mode sync")
    args = parser.parse_args()
    if args.mode == "aio":
        asyncio.run(serve_aio(args.port))
    else:
        serve_sync(args.port, args.workers)


if __name__ == "__main__":
    main()
