"""`cairn bench --ops watch`: events/s delivered to W watchers of one prefix under a steady put
rate, and the lag from a put being sent to each watcher receiving its event (p50/p99).

Why it is built the way it is:

- Watchers are multiplexed 100 per Watch stream, as clients (etcd's clientv3, aetcd) share one
  stream per channel; 1000 watchers on 1000 streams would measure connection handling instead.
- One asyncio client in the bench process runs the watchers and the writer, so their clocks are
  the same ``time.monotonic``: every put carries its send time as the value and the lag is the
  receive time minus that. The client shares the machine's CPU with the server on both sides
  alike, and its CPU is reported so a client-bound run shows as such.
- The put rate is steady (paced, one put at a time), not as fast as possible: the question is
  how quickly events reach watchers at a given load, not how fast puts go (that is ``put``).
- A run waits until every watch is created before the first put, and at most ``--duration``
  seconds after the last put for the remaining events; what was not delivered by then is
  reported as missing rather than waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from cairn.cli.bench.load import machine_busy_seconds, percentile, proc_cpu_seconds
from cairn.cli.bench.report import fmt
from cairn.cli.bench.servers import Server

PREFIX, PREFIX_END = b"/cairn-bench-watch/", b"/cairn-bench-watch0"
WATCHERS_PER_STREAM = 100
DEFAULT_WATCHERS = (1, 100, 1000)
# watchers -> (puts, puts per second): the offered event rate grows with the watchers (500,
# 10,000, 20,000 events/s) while each case lasts 4-7.5 s.
DEFAULT_CASES = {1: (2000, 500.0), 100: (600, 100.0), 1000: (150, 20.0)}
CREATE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WatchCase:
    """One measurement: this many watchers, this many puts at this rate."""

    watchers: int
    puts: int
    rate: float


@dataclass
class WatchResult:
    server: str
    watchers: int
    put_rate: float  # offered puts/s
    puts: int
    expected: int  # watchers x puts events
    delivered: int
    wall_s: float  # first put sent to last event received
    events_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    client_cpu_cores: float  # the bench process (watchers and writer)
    server_cpu_cores: float | None
    machine_busy_cores: float
    error: str = ""

    @property
    def other_cores(self) -> float | None:
        """CPU used by neither the bench nor the server: other work on a shared machine, which
        the idle background samples before and after a run cannot see."""
        if self.server_cpu_cores is None:
            return None
        return max(0.0, self.machine_busy_cores - self.client_cpu_cores - self.server_cpu_cores)


def cases(watchers: str, puts: int | None, rate: float | None) -> list[WatchCase]:
    """The cases for `--watchers`; `--watch-puts`/`--watch-rate` override the defaults, and a
    watcher count without a default offers ~10,000 events/s (at most 500 puts/s) for ~5 s."""
    out = []
    for part in watchers.split(","):
        if not part.strip():
            continue
        w = int(part)
        if w < 1:
            raise ValueError("--watchers: every count must be >= 1")
        default_rate = min(500.0, 10_000.0 / w)
        default_puts, default_rate = DEFAULT_CASES.get(
            w, (max(1, int(default_rate * 5)), default_rate)
        )
        case = WatchCase(
            w,
            puts if puts is not None else default_puts,
            rate if rate is not None else default_rate,
        )
        if case.puts < 1 or case.rate <= 0:
            raise ValueError("--watch-puts and --watch-rate must be positive")
        out.append(case)
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(server: Server, case: WatchCase, linger_s: float) -> WatchResult:
    """Create the watchers, pace the puts, collect one lag per (watcher, put)."""
    import grpc

    from cairn.proto import rpc_pb2 as pb
    from cairn.proto.rpc_pb2_grpc import KVStub, WatchStub

    lags: list[float] = []
    expected = case.watchers * case.puts
    created = 0
    all_created, all_delivered = asyncio.Event(), asyncio.Event()
    last_event = 0.0

    async def stream(count: int) -> None:
        nonlocal created, last_event

        async def requests() -> AsyncIterator[pb.WatchRequest]:
            for _ in range(count):
                create = pb.WatchCreateRequest(key=PREFIX, range_end=PREFIX_END)
                yield pb.WatchRequest(create_request=create)
            await asyncio.Event().wait()  # keep the stream open until cancelled

        async with grpc.aio.insecure_channel(server.endpoint) as channel:
            async for response in WatchStub(channel).Watch(requests()):
                if response.created:
                    created += 1
                    if created == case.watchers:
                        all_created.set()
                if response.events:
                    last_event = time.monotonic()
                    lags.extend(last_event - float(e.kv.value) for e in response.events)
                    if len(lags) >= expected:
                        all_delivered.set()

    sizes = [
        min(WATCHERS_PER_STREAM, case.watchers - i)
        for i in range(0, case.watchers, WATCHERS_PER_STREAM)
    ]
    streams = [asyncio.create_task(stream(n)) for n in sizes]
    error = ""
    start = time.monotonic()
    cpu0, machine0 = _cpu_seconds(), machine_busy_seconds()
    server_cpu0 = proc_cpu_seconds(server.pid) if server.pid else None
    try:
        waiting = asyncio.create_task(all_created.wait())
        await asyncio.wait(
            [waiting, *streams], timeout=CREATE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        if not all_created.is_set():
            failed = [t for t in streams if t.done()]
            reason = repr(failed[0].exception()) if failed else "timed out"
            raise RuntimeError(f"{created}/{case.watchers} watches created: {reason}"[:500])
        async with grpc.aio.insecure_channel(server.endpoint) as channel:
            kv = KVStub(channel)
            start = time.monotonic()
            cpu0, machine0 = _cpu_seconds(), machine_busy_seconds()
            server_cpu0 = proc_cpu_seconds(server.pid) if server.pid else None
            for i in range(case.puts):
                delay = start + i / case.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                value = b"%.6f" % time.monotonic()
                await kv.Put(pb.PutRequest(key=PREFIX + b"%d" % (i % 100), value=value), timeout=10)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_delivered.wait(), linger_s)
    except (grpc.RpcError, RuntimeError) as failure:
        error = f"{type(failure).__name__}: {failure}"[:500]
    finally:
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    end = time.monotonic()
    window = max(end - start, 1e-9)
    server_cpu1 = proc_cpu_seconds(server.pid) if server.pid else None
    wall = max((last_event or end) - start, 1e-9)
    lags.sort()
    if not error and len(lags) < expected:
        error = f"{expected - len(lags)} events not delivered within {linger_s:.0f} s"
    return WatchResult(
        server=server.name,
        watchers=case.watchers,
        put_rate=case.rate,
        puts=case.puts,
        expected=expected,
        delivered=len(lags),
        wall_s=wall,
        events_per_s=len(lags) / wall,
        lag_p50_ms=percentile(lags, 0.50) * 1000,
        lag_p99_ms=percentile(lags, 0.99) * 1000,
        client_cpu_cores=(_cpu_seconds() - cpu0) / window,
        server_cpu_cores=(
            (server_cpu1 - server_cpu0) / window
            if server_cpu0 is not None and server_cpu1 is not None
            else None
        ),
        machine_busy_cores=(machine_busy_seconds() - machine0) / window,
        error=error,
    )


def bench_watch(
    servers: list[Server],
    watch_cases: list[WatchCase],
    linger_s: float,
    progress: Callable[[str], None],
) -> list[WatchResult]:
    """Every case on every server, interleaved (cairn, etcd per case) as the put/range runs are,
    in one event loop so grpc.aio keeps a single loop for the whole process."""

    async def run() -> list[WatchResult]:
        results = []
        for case in watch_cases:
            for server in servers:
                result = await _measure(server, case, linger_s)
                results.append(result)
                progress(_progress_line(result))
        return results

    return asyncio.run(run())


def _progress_line(r: WatchResult) -> str:
    line = (
        f"  {r.server:5s} watch W={r.watchers:<5d} {r.events_per_s:8.0f} events/s  "
        f"lag p50 {r.lag_p50_ms:7.2f} ms  p99 {r.lag_p99_ms:7.2f} ms  "
        f"delivered {r.delivered}/{r.expected}  client {r.client_cpu_cores:.2f} "
        f"server {fmt(r.server_cpu_cores, '.2f')} other {fmt(r.other_cores, '.2f')} "
        f"machine {r.machine_busy_cores:.2f} cores"
    )
    return line + (f"  ERROR {r.error}" if r.error else "")


def render_watch_table(cairn: list[WatchResult], etcd: list[WatchResult]) -> str:
    """cairn, etcd and cairn/etcd ratios (events/s: higher is better; lag: lower) per case."""
    by_watchers = {r.watchers: r for r in etcd}
    side = f"{'events/s':>9s} {'p50 ms':>7s} {'p99 ms':>7s} {'deliv':>5s}"
    lines = [f"{'':15s} | {'cairn':^31s}"]
    head = f"{'watchers':>8s} {'puts/s':>6s} | {side}"
    if etcd:
        lines[0] += f" | {'etcd':^31s} | {'cairn/etcd':^25s}"
        head += f" | {side} | {'events/s':>9s} {'p50':>7s} {'p99':>7s}"
    lines += [head, "-" * len(head)]

    def cells(r: WatchResult) -> str:
        share = f"{100 * r.delivered // max(r.expected, 1)}%"
        return f"{r.events_per_s:9.0f} {r.lag_p50_ms:7.2f} {r.lag_p99_ms:7.2f} {share:>5s}"

    for r in cairn:
        row = f"{r.watchers:>8d} {r.put_rate:>6.0f} | {cells(r)}"
        e = by_watchers.get(r.watchers)
        if e is not None:
            ratios = [
                r.events_per_s / e.events_per_s if e.events_per_s else None,
                r.lag_p50_ms / e.lag_p50_ms if e.lag_p50_ms else None,
                r.lag_p99_ms / e.lag_p99_ms if e.lag_p99_ms else None,
            ]
            row += f" | {cells(e)} | {fmt(ratios[0], '9.2f')} {fmt(ratios[1], '7.2f')}"
            row += f" {fmt(ratios[2], '7.2f')}"
        lines.append(row)
    return "\n".join(lines)
