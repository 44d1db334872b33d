"""Reads the Prometheus text format (0.0.4) the way a test needs it: per family, its type, the
label names its samples carry and its histogram buckets. Used on cairn's and etcd's /metrics."""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass, field

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Family:
    name: str
    type: str
    label_names: set[frozenset[str]] = field(default_factory=set)
    buckets: set[float] = field(default_factory=set)
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, suffix: str = "", **labels: str) -> float:
        """Sum of the samples named ``name + suffix`` whose labels include ``labels``."""
        wanted = self.name + suffix
        return sum(
            v
            for n, lab, v in self.samples
            if n == wanted and all(lab.get(k) == x for k, x in labels.items())
        )


def parse(text: str) -> dict[str, Family]:
    families: dict[str, Family] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families[name] = Family(name, kind.strip())
            continue
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        sample, raw_labels, raw_value = match.groups()
        labels = dict(_LABEL.findall(raw_labels or ""))
        family = _family_of(families, sample)
        family.samples.append((sample, labels, float(raw_value)))
        names = set(labels)
        if sample.endswith("_bucket"):
            names.discard("le")
            if labels["le"] != "+Inf":
                family.buckets.add(float(labels["le"]))
        family.label_names.add(frozenset(names))
    return families


def _family_of(families: dict[str, Family], sample: str) -> Family:
    if sample in families:
        return families[sample]
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample.removesuffix(suffix)
        if base != sample and base in families:
            return families[base]
    raise AssertionError(f"sample {sample} has no # TYPE line")


def fetch(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """(status, body) of a GET, also for 4xx/5xx answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(metrics_url: str) -> dict[str, Family]:
    status, body = fetch(f"{metrics_url}/metrics")
    assert status == 200, body
    return parse(body)
