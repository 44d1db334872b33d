"""The durability suite's tools: a concurrent write workload that keeps a ledger of every
acknowledged write, the checks a restarted server must pass against that ledger, and a little
WAL file surgery.

Every check talks to a real `cairn serve` process over the etcd KV gRPC API on 127.0.0.1.
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from tests.support.servers import LOOPBACK, ServerProcess

from cairn.proto import kv_pb2
from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import KVStub

RPC_TIMEOUT = 5.0
#: Ranges per read-only txn when reading many (key, revision) pairs; below --max-txn-ops (128).
READ_BATCH = 100
#: The revision a fresh store is at before its first write (etcd starts at 1, writes from 2).
FIRST_WRITE_REVISION = 2

T = TypeVar("T")
R = TypeVar("R")

# ------------------------------------------------------------------------------ connections


def open_channel(server: ServerProcess) -> grpc.Channel:
    """A plain channel to the server's client port; never through an HTTP proxy."""
    return grpc.insecure_channel(
        f"{LOOPBACK}:{server.client_port}", options=[("grpc.enable_http_proxy", 0)]
    )


def current_revision(kv: KVStub) -> int:
    response = kv.Range(pb.RangeRequest(key=b"durability/probe"), timeout=RPC_TIMEOUT)
    return int(response.header.revision)


# ------------------------------------------------------------------------------ the ledger


@dataclass(frozen=True)
class Write:
    """One acknowledged write: every key it set, with its value, at `revision`."""

    revision: int
    kvs: tuple[tuple[bytes, bytes], ...]
    kind: str


@dataclass
class Ledger:
    """What clients were told, and what they tried. Shared by writer threads (use the lock)."""

    acked: list[Write] = field(default_factory=list)
    #: Every value any client sent for a key, acknowledged or not.
    attempted: dict[bytes, set[bytes]] = field(default_factory=dict)
    #: Requests that were sent but got no answer (the server died under them).
    unanswered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attempt(self, kvs: Sequence[tuple[bytes, bytes]]) -> None:
        with self.lock:
            for key, value in kvs:
                self.attempted.setdefault(key, set()).add(value)

    def ack(self, write: Write) -> None:
        with self.lock:
            self.acked.append(write)

    def no_answer(self) -> None:
        with self.lock:
            self.unanswered += 1

    def put(self, kv: KVStub, key: bytes, value: bytes) -> int:
        """One acknowledged put from the test itself; returns its revision."""
        self.attempt([(key, value)])
        revision = int(
            kv.Put(pb.PutRequest(key=key, value=value), timeout=RPC_TIMEOUT).header.revision
        )
        self.ack(Write(revision, ((key, value),), "put"))
        return revision


# ------------------------------------------------------------------------------ the workload


@dataclass(frozen=True)
class _Op:
    kind: str
    kvs: tuple[tuple[bytes, bytes], ...]


def _op(tag: str, writer: int, n: int) -> _Op:
    """The n-th request of a writer: fresh keys, overwrites of shared hot keys, and txns."""
    value = f"{tag}.w{writer}.{n}".encode()
    step = n % 4
    if step == 2:
        # Shared by every writer and every round, so keys are overwritten concurrently.
        return _Op("put", ((f"hot/{n % 7}".encode(), value),))
    if step == 3:
        prefix = f"{tag}/w{writer}/t{n}"
        return _Op("txn", ((f"{prefix}/a".encode(), value), (f"{prefix}/b".encode(), value)))
    return _Op("put", ((f"{tag}/w{writer}/d{n}".encode(), value),))


def _send(kv: KVStub, op: _Op) -> tuple[int, str | None]:
    """Send one request; returns its revision and, if the answer is wrong, what is wrong."""
    if op.kind == "put":
        ((key, value),) = op.kvs
        response = kv.Put(pb.PutRequest(key=key, value=value), timeout=RPC_TIMEOUT)
        return int(response.header.revision), None
    first_key = op.kvs[0][0]
    txn = pb.TxnRequest(
        compare=[
            pb.Compare(
                key=first_key,
                result=pb.Compare.EQUAL,
                target=pb.Compare.CREATE,
                create_revision=0,
            )
        ],
        success=[
            pb.RequestOp(request_put=pb.PutRequest(key=key, value=value)) for key, value in op.kvs
        ],
    )
    response = kv.Txn(txn, timeout=RPC_TIMEOUT)
    problem = None if response.succeeded else f"txn on fresh key {first_key!r} did not succeed"
    return int(response.header.revision), problem


class Workload:
    """Writer threads, each with its own channel, writing as fast as the server acknowledges.

    Stop or kill the server through `interrupt()`: errors after it begins are expected (the
    request is counted as unanswered), errors before it are recorded in `unexpected`.
    """

    def __init__(self, server: ServerProcess, ledger: Ledger, tag: str, writers: int = 6) -> None:
        self.server = server
        self.ledger = ledger
        self.tag = tag
        self.unexpected: list[str] = []
        self.acked_here = 0
        #: Requests sent while the server was still running that never got an answer.
        self.cut_off = 0
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._crashing = threading.Event()
        self._dead = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(w,), name=f"writer-{tag}-{w}", daemon=True)
            for w in range(writers)
        ]

    def start(self) -> Workload:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for_acks(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.acked_here < count:
            assert not self.unexpected, self.unexpected
            assert time.monotonic() < deadline, (
                f"only {self.acked_here} writes acknowledged in {timeout}s"
            )
            time.sleep(0.01)

    def interrupt(self, action: Callable[[], R]) -> R:
        """Run `action` (kill or stop the server) under the writers' feet; returns its result."""
        self._crashing.set()
        try:
            return action()
        finally:
            self._dead.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), f"{thread.name} did not finish in {timeout}s"

    def _run(self, writer: int) -> None:
        try:
            self._write(writer)
        except Exception as error:  # a dead writer must fail the test, not go unnoticed
            self.unexpected.append(f"writer {writer} crashed: {error!r}")

    def _write(self, writer: int) -> None:
        with open_channel(self.server) as channel:
            kv = KVStub(channel)
            n = 0
            while not self._stop.is_set():
                op = _op(self.tag, writer, n)
                n += 1
                self.ledger.attempt(op.kvs)
                sent_while_alive = not self._dead.is_set()
                try:
                    revision, problem = _send(kv, op)
                except grpc.RpcError as error:
                    self.ledger.no_answer()
                    if self._crashing.is_set():
                        with self._count_lock:
                            self.cut_off += sent_while_alive
                    else:
                        self.unexpected.append(
                            f"writer {writer}: {error.code()} {error.details()} before the crash"
                        )
                    return
                if problem is not None:
                    self.unexpected.append(f"writer {writer}: {problem}")
                    return
                self.ledger.ack(Write(revision, op.kvs, op.kind))
                with self._count_lock:
                    self.acked_here += 1


# ------------------------------------------------------------------------------ the checks


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_at(kv: KVStub, pairs: Sequence[tuple[bytes, int]]) -> list[kv_pb2.KeyValue | None]:
    """The value of each key at each revision (0: the latest), a few read-only txns in all."""
    found: list[kv_pb2.KeyValue | None] = []
    for chunk in _chunks(pairs, READ_BATCH):
        txn = pb.TxnRequest(
            success=[
                pb.RequestOp(request_range=pb.RangeRequest(key=key, revision=revision))
                for key, revision in chunk
            ]
        )
        response = kv.Txn(txn, timeout=RPC_TIMEOUT)
        assert len(response.responses) == len(chunk)
        for op in response.responses:
            kvs = op.response_range.kvs
            found.append(kvs[0] if kvs else None)
    return found


def _writes_at(kv: KVStub, revision: int) -> list[kv_pb2.KeyValue]:
    """Every key whose value was written exactly at `revision` (the whole keyspace)."""
    response = kv.Range(
        pb.RangeRequest(
            key=b"\0",
            range_end=b"\0",
            revision=revision,
            min_mod_revision=revision,
            max_mod_revision=revision,
        ),
        timeout=RPC_TIMEOUT,
    )
    return list(response.kvs)


def check_ledger(server: ServerProcess, ledger: Ledger) -> int:
    """Check the server holds every acknowledged write; returns its current revision.

    - every acknowledged write is there: reading its key at its revision gives its value with
      mod_revision equal to the acknowledged revision;
    - the latest value of every key is the last acknowledged one, or a later write that was
      in flight when the server died (never an older or unknown value);
    - revisions have no gaps: each revision from 2 to the current one is an acknowledged write
      or a write a client sent without getting an answer (at most as many as went unanswered);
    - no two acknowledged writes share a revision.
    """
    failures: list[str] = []
    with ledger.lock:
        acked = list(ledger.acked)
        attempted = {key: set(values) for key, values in ledger.attempted.items()}
        unanswered = ledger.unanswered
    by_revision = Counter(write.revision for write in acked)
    failures += [
        f"revision {rev} acknowledged to {count} writes"
        for rev, count in by_revision.items()
        if count > 1
    ]
    with open_channel(server) as channel:
        kv = KVStub(channel)
        current = current_revision(kv)
        highest = max(by_revision, default=1)
        assert current >= highest, (
            f"the server is at revision {current}, but revision {highest} was acknowledged"
        )

        # Each acknowledged write, read back at its own revision.
        pairs = [(key, write.revision) for write in acked for key, _ in write.kvs]
        expected = [value for write in acked for _, value in write.kvs]
        for (key, rev), value, got in zip(pairs, expected, read_at(kv, pairs), strict=True):
            if got is None:
                failures.append(f"{key!r} acknowledged at revision {rev} is missing there")
            elif got.mod_revision != rev or got.value != value:
                failures.append(
                    f"{key!r} acknowledged at revision {rev} with {value!r} reads back as "
                    f"{got.value!r} mod_revision {got.mod_revision}"
                )

        # The latest value of each key.
        last_ack: dict[bytes, tuple[int, bytes]] = {}
        for write in sorted(acked, key=lambda w: w.revision):
            for key, value in write.kvs:
                last_ack[key] = (write.revision, value)
        keys = sorted(last_ack)
        for key, got in zip(keys, read_at(kv, [(key, 0) for key in keys]), strict=True):
            rev, value = last_ack[key]
            if got is None:
                failures.append(f"{key!r} (last acknowledged at {rev}) is gone")
            elif got.mod_revision < rev:
                failures.append(f"{key!r} went back to revision {got.mod_revision} from {rev}")
            elif got.mod_revision == rev and got.value != value:
                failures.append(f"{key!r} at {rev} holds {got.value!r}, acknowledged {value!r}")
            elif got.value not in attempted.get(key, ()):
                failures.append(f"{key!r} holds {got.value!r}, which no client ever wrote")

        # No gaps: the revisions no acknowledgement accounts for must hold in-flight writes.
        unaccounted = [
            rev for rev in range(FIRST_WRITE_REVISION, current + 1) if rev not in by_revision
        ]
        if len(unaccounted) > unanswered:
            failures.append(
                f"{len(unaccounted)} revisions are not acknowledged writes but only "
                f"{unanswered} requests went unanswered: {unaccounted[:20]}"
            )
        for rev in unaccounted[:50]:
            written = _writes_at(kv, rev)
            if not written:
                failures.append(f"revision {rev} is a gap: no key was written at it")
            for item in written:
                if item.value not in attempted.get(item.key, ()):
                    failures.append(
                        f"revision {rev} wrote {item.key!r}={item.value!r}, which no client sent"
                    )
    assert not failures, f"{len(failures)} problems, first ones:\n" + "\n".join(failures[:25])
    return current


def check_next_write(server: ServerProcess, ledger: Ledger, key: str) -> int:
    """A new put lands at exactly the current revision + 1, and becomes the current one."""
    with open_channel(server) as channel:
        kv = KVStub(channel)
        before = current_revision(kv)
        revision = ledger.put(kv, key.encode(), b"after-restart")
        assert revision == before + 1, f"new put got revision {revision}, expected {before + 1}"
        assert current_revision(kv) == revision
        return revision


# ------------------------------------------------------------------------------ files


def wal_dir(server: ServerProcess) -> Path:
    return server.data_dir / "member" / "wal"


def db_dir(server: ServerProcess) -> Path:
    return server.data_dir / "member" / "db"


def wal_segments(server: ServerProcess) -> list[Path]:
    return sorted(wal_dir(server).glob("*.wal"))


def wal_snapshot(server: ServerProcess) -> dict[str, bytes]:
    """Name -> bytes of every file in the WAL directory."""
    return {path.name: path.read_bytes() for path in sorted(wal_dir(server).iterdir())}


#: A WAL frame header: u32 payload length, u32 payload CRC, u32 header CRC (little endian).
FRAME_HEADER = struct.Struct("<III")


def frame_offsets(data: bytes, start: int = 0) -> list[tuple[int, int]]:
    """(offset, total length) of each frame from `start`, which must be a frame boundary.

    Walks the length fields only, and insists on landing exactly on the end of `data`.
    """
    frames: list[tuple[int, int]] = []
    offset = start
    while offset < len(data):
        (length, _crc, _header_crc) = FRAME_HEADER.unpack_from(data, offset)
        frames.append((offset, FRAME_HEADER.size + length))
        offset += FRAME_HEADER.size + length
    assert offset == len(data), f"frames from {start} run past the end ({offset} > {len(data)})"
    return frames


#: Ways a crash can leave the record at `start` (and everything after it) half written.
TEAR_KINDS = ("in-header", "in-payload", "zero-filled")


def tear(path: Path, start: int, size: int, kind: str) -> None:
    """Damage the record at `start` (`size` bytes with its header) and drop all that follows,
    as a crash in the middle of writing it would.

    in-header: the file ends inside the record's header; in-payload: inside its payload;
    zero-filled: the file keeps its length, but from the middle of the payload on it holds
    zero bytes (a file system that grew the file before the data reached the disk).
    """
    middle = start + FRAME_HEADER.size + (size - FRAME_HEADER.size) // 2
    with path.open("r+b") as file:
        length = file.seek(0, os.SEEK_END)
        assert start < middle < start + size <= length
        if kind == "in-header":
            file.truncate(start + FRAME_HEADER.size // 2)
        elif kind == "in-payload":
            file.truncate(middle)
        elif kind == "zero-filled":
            file.seek(middle)
            file.write(bytes(length - middle))
        else:
            raise ValueError(kind)
        file.flush()
        os.fsync(file.fileno())


def log_offset(server: ServerProcess) -> int:
    """Where the next run's log lines will start in the (appended) server log."""
    return server.log_path.stat().st_size if server.log_path.exists() else 0


def log_since(server: ServerProcess, offset: int) -> str:
    with server.log_path.open("rb") as file:
        file.seek(offset)
        return file.read().decode(errors="replace")


def run_until_exit(server: ServerProcess, timeout: float) -> tuple[int, str, float]:
    """Run the server in the foreground; (exit code, combined output, seconds it ran).

    For starts that must fail: a server that would serve instead runs into `timeout`.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    began = time.monotonic()
    proc = subprocess.run(
        server.argv(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=server.base_dir,
        env=env,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout.decode(errors="replace"), time.monotonic() - began
