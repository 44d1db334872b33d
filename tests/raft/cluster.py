"""A deterministic in-memory cluster for the unit tests: every message is delivered at once,
in order, unless the link is cut. Drivers follow the Ready contract (persist, send, apply)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cairn.raft import (
    ConfChange,
    Config,
    ConfState,
    EntryKind,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    ReadState,
    Ready,
    Role,
)


def make_node(
    node_id: int,
    voters: Iterable[int],
    *,
    storage: MemoryStorage | None = None,
    learners: Iterable[int] = (),
    seed: int = 0,
    **kw,
) -> RawNode:
    voters = tuple(voters)
    if (
        storage is not None
        and storage.last_index()
        and voters
        and storage.initial_state()[1].is_empty()
    ):
        # A test storage pre-filled by hand: give it the configuration a real one would have.
        storage.set_conf_state(ConfState(voters, tuple(learners)))
    cfg = Config(
        id=node_id,
        storage=storage if storage is not None else MemoryStorage(),
        rng=random.Random(seed * 1000 + node_id),
        voters=voters,
        learners=tuple(learners),
        **kw,
    )
    return RawNode(cfg)


def handle_ready(node: RawNode) -> Ready:
    """Act on one Ready the way a member must: persist, (caller sends), apply, advance."""
    storage = node.raft.log.storage
    rd = node.ready()
    if rd.snapshot is not None:
        storage.apply_snapshot(rd.snapshot)
    storage.append(rd.entries)
    if rd.hard_state is not None:
        storage.set_hard_state(rd.hard_state)
    for e in rd.committed_entries:
        if e.kind is EntryKind.CONF_CHANGE:
            node.apply_conf_change(ConfChange.decode(e.data))
    node.advance(rd)
    return rd


@dataclass
class Cluster:
    """Nodes keyed by id; `cut` holds (from, to) links that drop everything."""

    nodes: dict[int, RawNode]
    storages: dict[int, MemoryStorage]
    cut: set[tuple[int, int]] = field(default_factory=set)
    applied: dict[int, list[bytes]] = field(default_factory=dict)
    read_states: dict[int, list[ReadState]] = field(default_factory=dict)
    #: Every message that was sent, for assertions.
    sent: list[Message] = field(default_factory=list)
    #: Message types to drop everywhere.
    drop_types: set[MessageType] = field(default_factory=set)
    #: Drop any message for which this returns True.
    drop_if: Callable[[Message], bool] | None = None

    @classmethod
    def new(cls, n: int = 3, *, learners: Iterable[int] = (), **kw) -> Cluster:
        learners = tuple(learners)
        voters = tuple(range(1, n + 1))
        storages = {i: MemoryStorage() for i in (*voters, *learners)}
        nodes = {
            i: make_node(i, voters, storage=storages[i], learners=learners, **kw) for i in storages
        }
        return cls(
            nodes, storages, applied={i: [] for i in nodes}, read_states={i: [] for i in nodes}
        )

    def raft(self, node_id: int):
        return self.nodes[node_id].raft

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def heal(self) -> None:
        self.cut.clear()

    def leader(self) -> int | None:
        leaders = [i for i, n in self.nodes.items() if n.raft.role is Role.LEADER]
        return max(leaders, key=lambda i: self.nodes[i].raft.term) if leaders else None

    def process(self, node_id: int) -> list[Message]:
        """Handle one Ready of one node; returns the messages it sends."""
        node = self.nodes[node_id]
        storage = self.storages[node_id]
        rd = node.ready()
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
            self.applied[node_id] = [b"<snap>"] * rd.snapshot.index
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        for e in rd.committed_entries:
            if e.kind is EntryKind.CONF_CHANGE:
                node.apply_conf_change(ConfChange.decode(e.data))
            self.applied[node_id].append(e.data)
        self.read_states[node_id].extend(rd.read_states)
        node.advance(rd)
        return rd.messages

    def stabilize(self, max_rounds: int = 1000) -> None:
        """Process Readies and deliver messages until nothing is left to do."""
        for _ in range(max_rounds):
            msgs: list[Message] = []
            for node_id in sorted(self.nodes):
                if self.nodes[node_id].has_ready():
                    msgs.extend(self.process(node_id))
            if not msgs and not any(n.has_ready() for n in self.nodes.values()):
                return
            self.deliver(msgs)
        raise AssertionError("cluster did not stabilize")

    def deliver(self, msgs: list[Message]) -> None:
        for m in msgs:
            self.sent.append(m)
            if (m.frm, m.to) in self.cut or m.type in self.drop_types:
                continue
            if self.drop_if is not None and self.drop_if(m):
                continue
            if m.to in self.nodes:
                self.nodes[m.to].step(m)

    def tick(self, node_id: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[node_id].tick()

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for node in self.nodes.values():
                node.tick()
            self.stabilize()

    def elect(self, node_id: int) -> None:
        self.nodes[node_id].campaign()
        self.stabilize()
        assert self.nodes[node_id].raft.role is Role.LEADER, self.nodes[node_id].status()

    def propose(self, node_id: int, data: bytes) -> None:
        self.nodes[node_id].propose(data)
        self.stabilize()
