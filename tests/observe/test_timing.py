"""Prometheus durations and their scaling for shortened test rules."""

from __future__ import annotations

import pytest

from cairn.observe.timing import Timing, format_ms, parse_ms


@pytest.mark.parametrize(
    ("text", "ms"), [("5m", 300_000), ("1h30m", 5_400_000), ("500ms", 500), ("2d", 172_800_000)]
)
def test_parse_reads_prometheus_durations(text: str, ms: int) -> None:
    assert parse_ms(text) == ms


@pytest.mark.parametrize("text", ["5", "5 m", "1.5m", "", "m5"])
def test_parse_refuses_what_prometheus_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ms(text)


@pytest.mark.parametrize(
    ("ms", "text"), [(90_000, "1m30s"), (4_500, "4s500ms"), (3_600_000, "1h"), (0, "0s")]
)
def test_format_writes_the_shortest_spelling(ms: int, text: str) -> None:
    assert format_ms(ms) == text


def test_production_timing_keeps_durations() -> None:
    assert Timing().hold("10m") == "10m" and Timing().window("4h") == "4h"


def test_scaled_durations_never_drop_below_one_second() -> None:
    short = Timing(for_scale=0.001, window_scale=0.001)
    assert short.hold("1m") == "1s"
    assert short.window("5m") == "1s"
    assert short.window("4h") == "14s400ms"
