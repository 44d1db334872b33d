"""Run a scenario (an ordered list of etcdctl invocations) on two servers and compare.

Each step runs on the reference (always the real etcd) and on the target (cairn, or a second
etcd when CAIRN_DIFF_TARGET=etcd) at the same time; after masking, exit code, stdout and
stderr must be equal. A step may capture a value from its stdout (a lease id, which etcd
picks at random) under a name; later steps use it as `{{name}}` in args or stdin, and every
output of that side shows it as `<name>`.

Commands that run until killed (`etcdctl watch`) are steps too: `start(name, ...)` runs one
in the background (with its stdin kept open for `feed(name, text)`, as `watch -i` reads its
commands there), later steps write, and `stop(name)` waits until its output has been quiet
for a moment, kills it and compares everything it printed, and its exit status.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tests.support.etcdctl import (
    Arg,
    CtlResult,
    OutputMasker,
    decode,
    run_etcdctl,
    start_etcdctl,
)
from tests.support.servers import ServerKind, ServerProcess

TARGET_ENV = "CAIRN_DIFF_TARGET"
_VAR = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")


def target_kind() -> ServerKind:
    """Which server plays "cairn": CAIRN_DIFF_TARGET=etcd runs etcd against etcd."""
    value = os.environ.get(TARGET_ENV, "cairn").strip().lower() or "cairn"
    if value not in ("cairn", "etcd"):
        raise ValueError(f"{TARGET_ENV} must be 'cairn' or 'etcd', not {value!r}")
    return "etcd" if value == "etcd" else "cairn"


@dataclass(frozen=True)
class Step:
    """One etcdctl invocation. `capture` maps a variable name to a regex with one group."""

    args: tuple[Arg, ...]
    stdin: str | bytes | None = None
    capture: tuple[tuple[str, str], ...] = ()
    # "run" (wait for exit), or for a background command "start", "feed" (write stdin) and
    # "stop" (kill, then compare what it printed); `name` tells background commands apart.
    kind: str = "run"
    name: str = ""

    def describe(self) -> str:
        """The command line as a shell would show it; long arguments are abbreviated."""
        if self.kind == "feed":
            return f"[{self.name}] <<< {printable(_as_bytes(self.stdin or '')).strip()!r}"
        if self.kind == "stop":
            return f"[{self.name}] stop, then compare its output"
        shown = " ".join(_shorten(printable(a), len(_as_bytes(a))) for a in self.args)
        text = f"etcdctl {shown}"
        if self.kind == "start":
            return f"[{self.name}] {text} &"
        if self.stdin is not None:
            data = _as_bytes(self.stdin)
            preview = printable(data if len(data) <= 200 else data[:60] + b"...")
            preview = preview.replace("\n", "\\n")
            text += f"  <<< stdin ({len(data)} bytes): {preview}"
        return text


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text


def _shorten(arg: str, size: int) -> str:
    if len(arg) <= 64:
        return shlex.quote(arg)
    return f"{shlex.quote(arg[:12])}...({size} bytes)"


def ctl(
    *args: Arg, stdin: str | bytes | None = None, capture: dict[str, str] | None = None
) -> Step:
    """Build a step: `ctl("get", "k", "-w", "json")`."""
    return Step(tuple(args), stdin, tuple((capture or {}).items()))


def start(name: str, *args: Arg) -> Step:
    """Run `etcdctl args...` in the background (until `stop(name)`); stdin stays open."""
    return Step(tuple(args), kind="start", name=name)


def feed(name: str, text: str) -> Step:
    """Write `text` to the stdin of background command `name` (a `watch -i` command line)."""
    return Step((), stdin=text, kind="feed", name=name)


def stop(name: str, capture: dict[str, str] | None = None) -> Step:
    """Wait until `name` printed nothing for a while, kill it, compare its whole output;
    `capture` takes values from that output (a lock key's lease) as `ctl` does."""
    return Step((), capture=tuple((capture or {}).items()), kind="stop", name=name)


# A background command is given this long to connect (and create its watch) before the next
# step, and this long after a `feed`; it is stopped once its output has not grown for QUIET_S.
START_SETTLE_S = 1.0
FEED_SETTLE_S = 0.5
QUIET_S = 0.7
STOP_MAX_WAIT_S = 15.0


@dataclass
class Background:
    """An etcdctl running in the background, printing into temporary files."""

    proc: subprocess.Popen[bytes]
    stdout: tempfile._TemporaryFileWrapper[bytes]
    stderr: tempfile._TemporaryFileWrapper[bytes]

    def size(self) -> int:
        return os.path.getsize(self.stdout.name) + os.path.getsize(self.stderr.name)

    def finish(self) -> tuple[int, str, str]:
        """Wait for quiet output, then kill; (exit status, stdout, stderr)."""
        deadline = time.monotonic() + STOP_MAX_WAIT_S
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline and self.proc.poll() is None:
            size = self.size()
            if size != last:
                last, quiet_since = size, time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_S:
                break
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        outputs = []
        for handle in (self.stdout, self.stderr):
            with open(handle.name, "rb") as f:
                outputs.append(decode(f.read()))
            handle.close()
        return code, outputs[0], outputs[1]


@dataclass(frozen=True)
class Scenario:
    """A named, ordered list of steps, run on a fresh pair of servers started with server_args."""

    name: str
    steps: tuple[Step, ...]
    server_args: tuple[str, ...] = ()
    # Why cairn cannot pass this yet (a feature a later issue builds); empty when it must pass.
    pending: str = ""


def scenario(
    name: str,
    *steps: Step | Iterable[Step],
    server_args: Sequence[str] = (),
    pending: str = "",
) -> Scenario:
    """Build a scenario; iterables of steps (e.g. from a helper) are flattened in order."""
    flat: list[Step] = []
    for item in steps:
        if isinstance(item, Step):
            flat.append(item)
        else:
            flat.extend(item)
    return Scenario(name, tuple(flat), tuple(server_args), pending)


@dataclass(frozen=True)
class Outcome:
    """A step's result on one side, after masking."""

    returncode: int
    stdout: str
    stderr: str


@dataclass
class Side:
    """One server taking part in a scenario, with its masker and captured variables."""

    label: str
    server: ServerProcess
    masker: OutputMasker = field(default_factory=OutputMasker)
    variables: dict[str, str] = field(default_factory=dict)
    background: dict[str, Background] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.masker.add_replacement(self.server.client_url, "<endpoint>")
        self.masker.add_replacement(f"127.0.0.1:{self.server.client_port}", "<endpoint>")

    def substitute(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.variables:
                raise _Uncaptured(name)
            return self.variables[name]

        return _VAR.sub(value, text)

    def run(self, step: Step) -> Outcome:
        try:
            args = [self.substitute(a) if isinstance(a, str) else a for a in step.args]
            stdin = self.substitute(step.stdin) if isinstance(step.stdin, str) else step.stdin
        except _Uncaptured as missing:
            # An earlier capture failed on this side (it differed there already): say so.
            return Outcome(-1, "", f"<not run: no {{{{{missing.name}}}}} was captured earlier>")
        if step.kind != "run":
            return self._background_step(step, args, stdin)
        result: CtlResult = run_etcdctl(self.server.client_url, args, stdin=stdin)
        self._capture(step, result.stdout)
        return Outcome(
            result.returncode,
            self.masker.mask_stdout(result.stdout),
            self.masker.mask_stderr(result.stderr),
        )

    def _capture(self, step: Step, stdout: str) -> None:
        for name, pattern in step.capture:
            found = re.search(pattern, stdout)
            if found is None:
                continue
            captured = found.group(1)
            self.variables[name] = captured
            self.masker.add_replacement(captured, f"<{name}>")
            if re.fullmatch(r"[0-9a-f]+", captured):
                # Lease ids are printed in hex by the simple format, in decimal by json/fields;
                # `lease` commands pad the hex to 16 digits, lock and election keys do not.
                self.masker.add_replacement(str(int(captured, 16)), f"<{name}>")
                self.masker.add_replacement(captured.zfill(16), f"<{name}>")

    def _background_step(self, step: Step, args: list[Arg], stdin: str | bytes | None) -> Outcome:
        if step.kind == "start":
            out = tempfile.NamedTemporaryFile(prefix="etcdctl-out-")  # noqa: SIM115
            err = tempfile.NamedTemporaryFile(prefix="etcdctl-err-")  # noqa: SIM115
            proc = start_etcdctl(self.server.client_url, args, stdout=out, stderr=err)
            self.background[step.name] = Background(proc, out, err)
            time.sleep(START_SETTLE_S)
            return Outcome(0, "", "")
        running = self.background.get(step.name)
        if running is None:
            return Outcome(-1, "", f"<no background command {step.name!r}>")
        if step.kind == "feed":
            data = stdin.encode("utf-8", "surrogateescape") if isinstance(stdin, str) else stdin
            assert running.proc.stdin is not None
            running.proc.stdin.write(data or b"")
            running.proc.stdin.flush()
            time.sleep(FEED_SETTLE_S)
            return Outcome(0, "", "")
        del self.background[step.name]
        code, stdout, stderr = running.finish()
        self._capture(step, stdout)
        return Outcome(code, self.masker.mask_stdout(stdout), self.masker.mask_stderr(stderr))

    def close(self) -> None:
        """Kill background commands a scenario left running."""
        for running in self.background.values():
            running.proc.kill()
            running.finish()
        self.background.clear()


class _Uncaptured(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Mismatch:
    index: int
    step: Step
    reference: Outcome
    target: Outcome


def run_scenario(scenario: Scenario, reference: Side, target: Side) -> list[Mismatch]:
    """Run every step on both sides (concurrently per step); return the steps that differ."""
    mismatches: list[Mismatch] = []
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for index, step in enumerate(scenario.steps, start=1):
                ref_future = pool.submit(reference.run, step)
                tgt_future = pool.submit(target.run, step)
                ref, tgt = ref_future.result(), tgt_future.result()
                if ref != tgt:
                    mismatches.append(Mismatch(index, step, ref, tgt))
    finally:
        reference.close()
        target.close()
    return mismatches


# -- reporting -------------------------------------------------------------------------------

_MAX_DIFF_LINES = 40
_MAX_LINE = 240


def printable(text: str | bytes) -> str:
    """Escape control characters and undecodable bytes so a diff stays readable."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        if ch == "\n" or (ch.isprintable() and not 0xDC80 <= ord(ch) <= 0xDCFF):
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _clip(line: str) -> str:
    return line if len(line) <= _MAX_LINE else f"{line[:_MAX_LINE]}... ({len(line)} chars)"


def _diff(name: str, ref: str, tgt: str, ref_label: str, tgt_label: str) -> list[str]:
    if ref == tgt:
        return []
    lines = list(
        difflib.unified_diff(
            printable(ref).splitlines(),
            printable(tgt).splitlines(),
            fromfile=f"{name} ({ref_label})",
            tofile=f"{name} ({tgt_label})",
            lineterm="",
            n=2,
        )
    )
    if not lines:  # differ only in a trailing newline
        lines = [f"{name}: {ref_label} {ref[-20:]!r} vs {tgt_label} {tgt[-20:]!r} (line endings)"]
    if len(lines) > _MAX_DIFF_LINES:
        lines = [*lines[:_MAX_DIFF_LINES], f"... {len(lines) - _MAX_DIFF_LINES} more diff lines"]
    return ["    " + _clip(line) for line in lines]


def format_mismatches(
    scenario: Scenario, mismatches: Sequence[Mismatch], reference: Side, target: Side
) -> str:
    """A readable report: each differing step, what differs, and the target's log tail."""
    total = len(scenario.steps)
    out = [
        f"scenario {scenario.name!r}: {len(mismatches)} of {total} steps differ "
        f"({reference.label} vs {target.label}; later differences may follow from the first)"
    ]
    for m in mismatches:
        out.append(f"  step {m.index}/{total}: {m.step.describe()}")
        if m.reference.returncode != m.target.returncode:
            out.append(
                f"    exit code: {reference.label} {m.reference.returncode}, "
                f"{target.label} {m.target.returncode}"
            )
        out += _diff("stdout", m.reference.stdout, m.target.stdout, reference.label, target.label)
        out += _diff("stderr", m.reference.stderr, m.target.stderr, reference.label, target.label)
    out.append(f"  {target.label} log ({target.server.log_path}), last lines:")
    out += ["    " + _clip(line) for line in target.server.log_tail(15).splitlines()]
    return "\n".join(out)
