"""Member and cluster IDs, derived the way etcd derives them.

An operator comparing `member list` output or metrics between etcd and cairn sees the same IDs
for the same --initial-cluster and --initial-cluster-token, and IDs stay stable across restarts
because they are recorded in the WAL metadata on first start.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


def member_id(peer_urls: list[str], cluster_token: str, unix_seconds: int | None = None) -> int:
    """First 8 bytes (big-endian) of SHA-1 over the sorted peer URLs joined, then the token.

    Founders hash no time, so every founder derives the same IDs from --initial-cluster. A
    member added at run time hashes the decimal Unix seconds of the add as well
    (`unix_seconds`), so re-adding a removed member's peer URLs gives a new ID: peers refuse
    a removed ID forever.
    """
    material = "".join(sorted(peer_urls)) + cluster_token
    if unix_seconds is not None:
        material += str(unix_seconds)
    return int.from_bytes(hashlib.sha1(material.encode()).digest()[:8], "big")


def cluster_id(member_ids: list[int]) -> int:
    """First 8 bytes (big-endian) of SHA-1 over the sorted member IDs as 8-byte big-endian."""
    material = b"".join(m.to_bytes(8, "big") for m in sorted(member_ids))
    return int.from_bytes(hashlib.sha1(material).digest()[:8], "big")


@dataclass(frozen=True)
class Identity:
    """Who this member is; written once into the WAL metadata."""

    name: str
    member_id: int
    cluster_id: int

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Identity:
        fields = json.loads(raw)
        return cls(fields["name"], int(fields["member_id"]), int(fields["cluster_id"]))

    @classmethod
    def bootstrap(cls, name: str, initial_cluster: dict[str, list[str]], token: str) -> Identity:
        ids = {n: member_id(urls, token) for n, urls in initial_cluster.items()}
        return cls(name, ids[name], cluster_id(list(ids.values())))
