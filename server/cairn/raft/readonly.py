"""ReadIndex bookkeeping on the leader.

A linearizable read needs the leader to know (a) an index that covers every write acknowledged
before the read arrived — its commit index — and (b) that it is still the leader, which it
learns when a quorum answers a heartbeat sent after the read arrived. Reads that arrive between
two heartbeat rounds share one round: they wait in `queued` until `flush` starts the round.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReadRequest:
    """One read: who asked (NONE = this node's driver), their context, and the read index."""

    frm: int
    ctx: bytes
    index: int


@dataclass(slots=True)
class ReadRound:
    """A heartbeat round confirming leadership for a batch of reads."""

    round_id: int
    requests: list[ReadRequest]
    acks: set[int] = field(default_factory=set)


def encode_round(round_id: int) -> bytes:
    return round_id.to_bytes(8, "big")


def decode_round(ctx: bytes) -> int | None:
    return int.from_bytes(ctx, "big") if len(ctx) == 8 else None


class ReadOnly:
    """Queued reads not yet in a round, and rounds awaiting a quorum of heartbeat acks."""

    def __init__(self) -> None:
        self.queued: list[ReadRequest] = []
        self.rounds: dict[int, ReadRound] = {}
        self._next_round = 1

    def add(self, request: ReadRequest) -> None:
        self.queued.append(request)

    def flush(self, self_id: int) -> ReadRound | None:
        """Start a round for everything queued; returns it so the caller sends heartbeats."""
        if not self.queued:
            return None
        rnd = ReadRound(self._next_round, self.queued, {self_id})
        self._next_round += 1
        self.queued = []
        self.rounds[rnd.round_id] = rnd
        return rnd

    def recv_ack(self, frm: int, round_id: int) -> ReadRound | None:
        rnd = self.rounds.get(round_id)
        if rnd is not None:
            rnd.acks.add(frm)
        return rnd

    def release(self, round_id: int) -> list[ReadRequest]:
        """A round reached quorum: it and every earlier round are confirmed (leadership held at
        a later time implies it was held at the earlier one)."""
        done: list[ReadRequest] = []
        for rid in sorted(self.rounds):
            if rid > round_id:
                break
            done.extend(self.rounds.pop(rid).requests)
        return done

    def reset(self) -> None:
        self.queued = []
        self.rounds = {}
