"""Watch delivery: events/s to W watchers of one prefix under a steady put rate, and the lag
from a put being sent to each watcher receiving its event (p50/p99), on cairn and on etcd.

    .venv/bin/python benchmarks/watch_lag.py cairn
    .venv/bin/python benchmarks/watch_lag.py etcd

A standalone script (not yet a `cairn bench` mode): one fresh single-member server, watchers
multiplexed 100 per Watch stream as clients do, one client process for watchers and writer
(so the client shares the machine's CPU with the server, on both sides alike). Every put
carries its send time (time.monotonic) as the value; lag is receive time minus that.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.servers import ServerKind, start_server

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc

# (watchers, puts, puts per second): the event rate grows with the watchers.
CASES = ((1, 2000, 500), (100, 600, 100), (1000, 150, 20))
PREFIX, PREFIX_END = b"/bench/", b"/bench0"


async def measure(address: str, watchers: int, puts: int, rate: float) -> str:
    lags: list[float] = []
    total = watchers * puts
    done = asyncio.Event()

    async def stream(count: int) -> None:
        async def requests() -> AsyncIterator[pb.WatchRequest]:
            for _ in range(count):
                create = pb.WatchCreateRequest(key=PREFIX, range_end=PREFIX_END)
                yield pb.WatchRequest(create_request=create)
            await asyncio.Event().wait()

        async with grpc.aio.insecure_channel(address) as channel:
            async for response in rpc_pb2_grpc.WatchStub(channel).Watch(requests()):
                now = time.monotonic()
                lags.extend(now - float(e.kv.value) for e in response.events)
                if len(lags) >= total:
                    done.set()

    streams = [asyncio.create_task(stream(min(100, watchers - i))) for i in range(0, watchers, 100)]
    await asyncio.sleep(1.5)  # every watch created
    async with grpc.aio.insecure_channel(address) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        start = time.monotonic()
        for i in range(puts):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            value = b"%.6f" % time.monotonic()
            await kv.Put(pb.PutRequest(key=PREFIX + b"%d" % (i % 100), value=value))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 60)
        elapsed = time.monotonic() - start
    for task in streams:
        task.cancel()
    lags.sort()

    def pct(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))] * 1000 if lags else float("nan")

    return (
        f"watchers={watchers:<5} put_rate={rate:>4.0f}/s events/s={len(lags) / elapsed:>7.0f} "
        f"lag_p50={pct(0.5):7.1f} ms lag_p99={pct(0.99):7.1f} ms delivered={len(lags)}/{total}"
    )


async def main(kind: ServerKind) -> None:
    with tempfile.TemporaryDirectory(prefix="watch-lag-") as tmp:
        server = start_server(kind, Path(tmp) / kind, extra_args=["--log-level", "warn"])
        try:
            for watchers, puts, rate in CASES:
                line = await measure(f"127.0.0.1:{server.client_port}", watchers, puts, rate)
                print(f"{kind:5} {line}", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main("etcd" if sys.argv[1:] == ["etcd"] else "cairn"))
