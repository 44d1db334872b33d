"""Go's duration syntax ("1h30m", "500ms"), which etcd's duration flags and messages use.

etcd parses --auto-compaction-retention and --experimental-corrupt-check-time with Go's
time.ParseDuration and prints durations with Go's formatting; matching both keeps cairn's
flag errors and log lines the ones an operator knows.
"""

from __future__ import annotations

import re


class GoDurationError(ValueError):
    """Not a Go duration; the message is Go's (`time: invalid duration "abc"`)."""


_GO_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_GO_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_go_duration(raw: str) -> int:
    """Go's time.ParseDuration, in nanoseconds, with its error texts (etcd prints them)."""
    text = raw
    sign = 1
    if text[:1] in ("-", "+"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise GoDurationError(f'time: invalid duration "{raw}"')
    total = 0
    while text:
        match = _GO_PART.match(text)
        assert match is not None  # every group is optional
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise GoDurationError(f'time: invalid duration "{raw}"')
        if not unit:
            raise GoDurationError(f'time: missing unit in duration "{raw}"')
        if unit not in _GO_UNITS_NS:
            # The unit runs up to the next digit or dot, as in Go.
            raise GoDurationError(f'time: unknown unit "{unit}" in duration "{raw}"')
        scale = _GO_UNITS_NS[unit]
        total += int(whole or 0) * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        text = text[match.end() :]
    return sign * total


def format_go_duration(seconds: float) -> str:
    """A duration as Go prints it ("2s", "30m0s", "1h0m0s", "1.5s", "500ms")."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    if nanos < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= scale:
                return f"{_trim(nanos / scale)}{unit}"
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim(rest / 1e9)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")
