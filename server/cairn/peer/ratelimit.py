"""Logs a recurring condition once per interval instead of once per retry.

A refused or unreachable peer is retried several times a second; logging every attempt would
bury the one line the operator needs under thousands of copies of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable


class RateLimitedLog:
    """Emits a message for a key at most once per ``interval`` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}

    def log(self, key: Hashable, level: int, message: str, *args: object) -> bool:
        """Log unless ``key`` was logged within the interval; returns whether it was logged."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        self._logger.log(level, message, *args)
        return True

    def reset(self, key: Hashable) -> None:
        """Forget ``key`` so the next occurrence is logged at once (e.g. after recovery)."""
        self._last.pop(key, None)
