"""PromQL building blocks that only accept metric names from the catalog.

Every series a dashboard or an alert reads is spelled through `series()` / `bucket()`, which
look the name up in `cairn.observe.catalog`: renaming or dropping a metric there makes
`cairn render` (and its test) fail instead of leaving a panel empty or an alert silent.
"""

from __future__ import annotations

import re
from functools import cache

from cairn.observe import catalog, textfile

SCRAPE_METRICS = frozenset({"up"})
"""Series Prometheus itself writes for every target; no server exports them."""


class UnknownMetric(KeyError):
    """A dashboard or alert named a metric the catalog does not define (or of the wrong type)."""


@cache
def _kinds() -> dict[str, str]:
    """Metric name -> type ("counter", "gauge", "histogram") from the catalog."""
    specs = (*catalog.CATALOG, *textfile.TEXTFILE_METRICS)
    return {spec.name: str(spec.type) for spec in specs}


def kind_of(name: str) -> str:
    if name in SCRAPE_METRICS:
        return "gauge"
    try:
        return _kinds()[name]
    except KeyError:
        raise UnknownMetric(f"{name} is not in cairn.observe.catalog") from None


def _matchers(selector: str, extra: str) -> str:
    inner = ", ".join(part for part in (selector, extra) if part)
    return f"{{{inner}}}" if inner else ""


def series(name: str, selector: str = "", extra: str = "") -> str:
    """``name{selector, extra}`` for a counter or gauge the catalog defines."""
    if kind_of(name) == "histogram":
        raise UnknownMetric(f"{name} is a histogram: use bucket(), count() or total()")
    return name + _matchers(selector, extra)


def bucket(name: str, selector: str = "", extra: str = "") -> str:
    """``name_bucket{...}`` of a histogram the catalog defines."""
    _histogram(name)
    return f"{name}_bucket" + _matchers(selector, extra)


def count(name: str, selector: str = "", extra: str = "") -> str:
    """``name_count{...}``: how many observations a histogram made."""
    _histogram(name)
    return f"{name}_count" + _matchers(selector, extra)


def _histogram(name: str) -> None:
    if kind_of(name) != "histogram":
        raise UnknownMetric(f"{name} is not a histogram in the catalog")


def quantile_over(quantile: float, histogram: str, selector: str, window: str, by: str = "") -> str:
    """The ``quantile`` of a histogram over ``window`` per job and instance (and ``by``)."""
    keep = ", ".join(part for part in ("job", "instance", by, "le") if part)
    rate = f"rate({bucket(histogram, selector)}[{window}])"
    return f"histogram_quantile({quantile}, sum by ({keep}) ({rate}))"


def metric_names(expr: str) -> set[str]:
    """The catalog (or scrape) metric names an expression reads, histogram suffixes folded."""
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    names = set()
    for word in words:
        for base in (
            word,
            word.removesuffix("_bucket"),
            word.removesuffix("_count"),
            word.removesuffix("_sum"),
        ):
            if base in SCRAPE_METRICS or base in _kinds():
                names.add(base)
                break
    return names
