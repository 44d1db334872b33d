"""Prometheus durations, and the scaling that lets tests run production rules in seconds.

The live tests evaluate the same alert rules an operator deploys, with every `for:` and every
range window shrunk by a factor, so a fault that would page after ten minutes pages after a few
seconds. Keeping the scaling in one place means the shortened rules differ from the committed
ones in their durations only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_FORMAT_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))

MIN_SCALED_MS = 1000
"""A shortened duration never drops below one second (a rate window needs two scrapes)."""


def parse_ms(text: str) -> int:
    """A Prometheus duration ("5m", "1h30m", "500ms") in milliseconds."""
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def format_ms(ms: int) -> str:
    """The shortest Prometheus spelling of ``ms`` milliseconds ("90000" -> "1m30s")."""
    if ms <= 0:
        return "0s"
    out = []
    for unit, size in _FORMAT_UNITS:
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


@dataclass(frozen=True)
class Timing:
    """How long alerts wait (`for:`) and how far back they look (range windows).

    ``for_scale`` and ``window_scale`` of 1 are the production rules; `cairn render
    --for-scale 0.01 --window-scale 0.02` shortens them for a live test.
    """

    for_scale: float = 1.0
    window_scale: float = 1.0

    def hold(self, duration: str) -> str:
        """A `for:` duration."""
        return self._scaled(duration, self.for_scale, MIN_SCALED_MS)

    def window(self, duration: str) -> str:
        """A range-vector or subquery window, or a prediction horizon."""
        return self._scaled(duration, self.window_scale, MIN_SCALED_MS)

    def seconds(self, duration: str) -> float:
        """A window in seconds (predict_linear's horizon is a number, not a duration)."""
        return parse_ms(self.window(duration)) / 1000

    @staticmethod
    def _scaled(duration: str, scale: float, floor_ms: int) -> str:
        ms = parse_ms(duration)
        if scale == 1.0:
            return format_ms(ms)
        return format_ms(max(floor_ms, round(ms * scale)))

    @property
    def is_production(self) -> bool:
        return self.for_scale == 1.0 and self.window_scale == 1.0


PRODUCTION = Timing()
