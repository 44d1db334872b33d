"""Run the real `etcdctl` (v3 API) as a subprocess, and mask what legitimately differs.

Two independent servers answer the same request with different cluster and member ids and
possibly different Raft terms; everything else etcdctl prints (revisions, versions, values,
error strings, exit codes) must match. `OutputMasker` replaces exactly those three header
fields, plus the volatile parts of etcdctl's own JSON log lines on stderr.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

# etcdctl's exit codes (ctlv3/command/error.go): facts the tests assert on.
EXIT_SUCCESS = 0
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_BAD_ARGS = 128

DEFAULT_TIMEOUT = 30.0

Arg = str | bytes


def etcdctl_path() -> str | None:
    """The etcdctl binary on PATH, or None when it is not installed."""
    return shutil.which("etcdctl")


@dataclass(frozen=True)
class CtlResult:
    """What one etcdctl invocation produced. Output is decoded losslessly (surrogateescape)."""

    args: tuple[Arg, ...]
    returncode: int
    stdout: str
    stderr: str


def _clean_env() -> dict[str, str]:
    """The caller's environment minus anything that would change etcdctl's behaviour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def decode(raw: bytes) -> str:
    """Decode process output without losing bytes that are not valid UTF-8."""
    return raw.decode("utf-8", "surrogateescape")


def run_etcdctl(
    endpoint: str,
    args: Sequence[Arg],
    *,
    stdin: str | bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    extra_global_flags: Sequence[str] = (),
) -> CtlResult:
    """Run `etcdctl --endpoints <endpoint> <args...>` with ETCDCTL_API=3.

    stdin defaults to empty input (never the terminal), so commands that fall back to reading
    a value from stdin behave the same way every time.
    """
    binary = etcdctl_path()
    if binary is None:
        raise FileNotFoundError("etcdctl is not installed (Debian package etcd-client)")
    data = stdin.encode("utf-8", "surrogateescape") if isinstance(stdin, str) else stdin
    argv: list[Arg] = [binary, f"--endpoints={endpoint}", *extra_global_flags, *args]
    proc = subprocess.run(
        argv,
        input=data if data is not None else b"",
        capture_output=True,
        timeout=timeout,
        env=_clean_env(),
        check=False,
    )
    return CtlResult(tuple(args), proc.returncode, decode(proc.stdout), decode(proc.stderr))


def start_etcdctl(
    endpoint: str, args: Sequence[Arg], *, stdout: IO[bytes], stderr: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start `etcdctl --endpoints <endpoint> <args...>` in the background (e.g. `watch`).

    Its stdin is a pipe the caller writes to (`watch -i` reads commands there) and must keep
    open: etcdctl's interactive watch exits with an error at the end of its input.
    """
    binary = etcdctl_path()
    if binary is None:
        raise FileNotFoundError("etcdctl is not installed (Debian package etcd-client)")
    argv: list[Arg] = [binary, f"--endpoints={endpoint}", *args]
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, env=_clean_env()
    )


# Header fields that legitimately differ between two servers. Only non-zero values are masked:
# a server that leaves a field at 0 (or omits it) still shows up as a difference.
_HEADER_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # -w json: {"header":{"cluster_id":123,"member_id":456,"revision":7,"raft_term":2}}
    ("cluster_id", re.compile(r'(?<="cluster_id":)([1-9][0-9]*)')),
    ("member_id", re.compile(r'(?<="member_id":)([1-9][0-9]*)')),
    ("raft_term", re.compile(r'(?<="raft_term":)([1-9][0-9]*)')),
    # -w fields: one `"Name" : value` per line.
    ("cluster_id", re.compile(r'(?m)(?<=^"ClusterID" : )([1-9][0-9]*)$')),
    ("member_id", re.compile(r'(?m)(?<=^"MemberID" : )([1-9][0-9]*)$')),
    ("raft_term", re.compile(r'(?m)(?<=^"RaftTerm" : )([1-9][0-9]*)$')),
    # Alarms name their member: `alarm list` and Status.errors print "memberID:456 alarm:NOSPACE",
    # -w json {"memberID":456,"alarm":1}. Numbered with the header ids: the same member.
    ("member_id", re.compile(r"(?<=memberID:)([1-9][0-9]*)(?= alarm:)")),
    ("member_id", re.compile(r'(?<="memberID":)([1-9][0-9]*)')),
)

# `endpoint hashkv` hash values: two implementations hash different bytes, so the value is
# masked, numbered like the ids (a hash that should stay the same between two steps, or change,
# still shows). Applied after the endpoint is replaced, so only hashkv's lines match.
_HASH_PATTERNS: tuple[re.Pattern[str], ...] = (
    # -w json: {"Endpoint":"...","HashKV":{"header":{...},"hash":123,"compact_revision":-1}}
    re.compile(r'(?<="hash":)([0-9]+)'),
    # simple: "<endpoint>, 123"
    re.compile(r"(?m)(?<=^<endpoint>, )([0-9]+)$"),
    # -w fields: '"Hash" : 123'
    re.compile(r'(?m)(?<=^"Hash" : )([0-9]+)$'),
    # -w table: "| <endpoint> | 123 |" (the column's padding is normalised below)
    re.compile(r"(?m)(?<=^\| <endpoint> \| )\s*([0-9]+)(?= \|$)"),
)
# The HASH column of `endpoint hashkv -w table` is as wide as the longest hash: its borders
# and header are masked with the hash, leaving the ENDPOINT column as printed.
_HASH_TABLE_HEADER = re.compile(r"(?m)^(\|\s+ENDPOINT\s+\|)\s+HASH\s+\|$")
_HASH_TABLE_BORDER = re.compile(r"(?m)^(\+-+\+)-+\+$")

# A Go panic prints goroutine stacks with addresses and offsets; only the first line is stable.
# A nil dereference adds a "[signal SIGSEGV: ...]" line after the panic line; it is kept.
_GO_PANIC = re.compile(
    r"(?ms)^(panic: [^\n]*(?:\n\[signal [^\n]*)?)\n\ngoroutine .*?(?=^Error: |\Z)"
)

# etcdctl's client logs (zap, JSON) keep only these fields; ts, caller, target, attempt vary.
_LOG_KEEP = ("level", "msg", "error")


@dataclass
class OutputMasker:
    """Masks one server's etcdctl output so it can be compared with another server's.

    Each distinct id is numbered in order of appearance (`<member_id#1>`), per masker, so a
    server whose member id changes between two responses is still caught. `replacements`
    maps literal strings (an endpoint, a lease id captured from an earlier step) to stable
    placeholders.
    """

    replacements: dict[str, str] = field(default_factory=dict)
    _seen: dict[str, dict[str, int]] = field(default_factory=dict)

    def add_replacement(self, literal: str, placeholder: str) -> None:
        if literal:
            self.replacements[literal] = placeholder

    def _placeholder(self, kind: str, value: str) -> str:
        numbering = self._seen.setdefault(kind, {})
        number = numbering.setdefault(value, len(numbering) + 1)
        return f"<{kind}#{number}>"

    def _replace_literals(self, text: str) -> str:
        # Longest first, so a literal that contains another one wins.
        for literal in sorted(self.replacements, key=len, reverse=True):
            pattern = r"(?<![0-9A-Za-z])" + re.escape(literal) + r"(?![0-9A-Za-z])"
            text = re.sub(pattern, lambda _m, lit=literal: self.replacements[lit], text)
        return text

    def mask_stdout(self, text: str) -> str:
        for kind, pattern in _HEADER_PATTERNS:
            text = pattern.sub(lambda m, kind=kind: self._placeholder(kind, m.group(1)), text)
        text = self._replace_literals(text)
        for pattern in _HASH_PATTERNS:
            text = pattern.sub(lambda m: self._placeholder("hash", m.group(1)), text)
        if _HASH_TABLE_HEADER.search(text):
            text = _HASH_TABLE_HEADER.sub(r"\1 HASH |", text)
            text = _HASH_TABLE_BORDER.sub(r"\1<hash column>+", text)
        return text

    def mask_stderr(self, text: str) -> str:
        text = _GO_PANIC.sub(r"\1\n<go stack trace>\n", text)
        lines = [normalize_log_line(line) for line in text.split("\n")]
        return self._replace_literals(self.mask_stdout("\n".join(lines)))


def normalize_log_line(line: str) -> str:
    """Reduce one of etcdctl's zap JSON log lines to level, msg and error; leave other lines."""
    stripped = line.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return line
    try:
        entry = json.loads(stripped)
    except ValueError:
        return line
    if not isinstance(entry, dict) or "level" not in entry or "msg" not in entry:
        return line
    kept: Mapping[str, object] = {k: entry[k] for k in _LOG_KEEP if k in entry}
    return json.dumps(kept, sort_keys=True, ensure_ascii=False)
