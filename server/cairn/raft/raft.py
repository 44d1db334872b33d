"""The Raft state machine: roles, terms, elections, replication, commit, reads, transfers.

`Raft` is driven by `step(message)` and `tick()` and never performs I/O; messages it wants sent
accumulate in `msgs` and read results in `read_states` until `RawNode.ready()` collects them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cairn.raft.errors import ProposalDropped
from cairn.raft.log import RaftLog
from cairn.raft.progress import Progress, ProgressState, ProgressTracker, VoteResult
from cairn.raft.readonly import ReadOnly, ReadRequest, decode_round, encode_round
from cairn.raft.storage import MemoryStorage
from cairn.raft.types import (
    LOCAL,
    NONE,
    TERMLESS,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)
from cairn.raft.types import MessageType as MT

#: Context of a VOTE sent because of a leadership transfer: voters honour it even while they
#: believe a leader is alive (the leader itself asked for the handover).
CAMPAIGN_TRANSFER = b"transfer"


@dataclass(slots=True)
class Config:
    """How to build a node.

    `voters` (alias `peers`) and `learners` bootstrap a brand-new cluster: with empty storage
    they become committed conf-change entries 1..n. A node joining an existing cluster passes
    neither and learns the configuration from the log or snapshot the leader sends. A node that
    restarts takes its configuration from storage (the snapshot's, or `set_conf_state`) plus the
    conf changes in its log up to `applied`; later ones come back as committed entries.
    """

    id: int
    storage: MemoryStorage
    rng: random.Random
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_inflight_msgs: int = 256
    max_size_per_msg: int | None = 1024 * 1024
    #: Cap on the bytes of committed entries in one Ready (None: no cap), so a node restarting
    #: far behind its commit index applies in batches rather than in one giant Ready.
    max_committed_size_per_ready: int | None = None
    pre_vote: bool = False
    check_quorum: bool = False
    #: The last index the state machine applied before a restart; committed entries after it
    #: are handed out again.
    applied: int = 0
    peers: tuple[int, ...] = field(default=())

    def validate(self) -> None:
        if self.id == NONE:
            raise ValueError("node id must not be 0")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be positive")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must exceed heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be positive")


class Raft:
    def __init__(self, config: Config) -> None:
        config.validate()
        self.id = config.id
        self.rng = config.rng
        self.log = RaftLog(config.storage, config.max_size_per_msg)
        self.log.max_committed_size = config.max_committed_size_per_ready
        self.max_size_per_msg = config.max_size_per_msg
        self.tracker = ProgressTracker(config.max_inflight_msgs)
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.pre_vote = config.pre_vote
        self.check_quorum = config.check_quorum

        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        #: Reads that arrived before this leader committed an entry of its own term.
        self.pending_reads: list[ReadRequest] = []
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.appends_pending = False

        storage = config.storage
        hard_state, conf_state = storage.initial_state()
        pristine = (
            storage.last_index() == 0 and storage.snapshot().is_empty() and hard_state.is_empty()
        )
        bootstrap = conf_state.is_empty() and pristine and bool(config.voters or config.peers)
        if bootstrap:
            self._bootstrap(tuple(config.voters or config.peers), tuple(config.learners))
        else:
            self._apply_conf_state(conf_state)
        if not hard_state.is_empty():
            self._load_hard_state(hard_state)
        if config.applied:
            if not self.log.applied <= config.applied <= self.log.committed:
                raise ValueError(
                    f"applied index {config.applied} outside [{self.log.applied} (snapshot), "
                    f"{self.log.committed} (persisted commit)]: the state machine does not "
                    "match the log"
                )
            self.log.applied_to(config.applied)
            if not bootstrap:
                self._replay_conf_changes(config.applied)
        self.become_follower(self.term, NONE)

    def _replay_conf_changes(self, applied: int) -> None:
        """After a restart at `applied`, the configuration is the storage's (its snapshot's)
        plus every conf change applied since: those entries will not be handed out again, so
        re-apply them here."""
        lo = self.log.first_index()
        if lo > applied:
            return
        for e in self.log.slice(lo, applied + 1, None):
            if e.kind is EntryKind.CONF_CHANGE:
                self.apply_conf_change(ConfChange.decode(e.data))

    def _bootstrap(self, voters: tuple[int, ...], learners: tuple[int, ...]) -> None:
        """Start a brand-new cluster: the initial configuration becomes committed conf-change
        entries at term 0, indexes 1..n, identical on every founding member.

        Putting it in the log (rather than only in memory) means a member that joins later and
        replays the log from index 1, or restarts before any snapshot, rebuilds the same
        membership. The entries appear in the first Ready to be persisted and applied (applying
        them again is harmless)."""
        changes = [ConfChange(ConfChangeType.ADD_VOTER, v) for v in sorted(set(voters))]
        changes += [ConfChange(ConfChangeType.ADD_LEARNER, v) for v in sorted(set(learners))]
        entries = [
            Entry(i, 0, cc.encode(), EntryKind.CONF_CHANGE) for i, cc in enumerate(changes, 1)
        ]
        self.log.append(entries)
        self.log.committed = len(entries)
        self._apply_conf_state(ConfState(tuple(sorted(set(voters))), tuple(sorted(set(learners)))))

    # ------------------------------------------------------------------ state accessors

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _load_hard_state(self, hs: HardState) -> None:
        if hs.commit < self.log.committed or hs.commit > self.log.last_index():
            raise AssertionError(
                f"hard state commit {hs.commit} outside [{self.log.committed}, "
                f"{self.log.last_index()}]"
            )
        self.log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def promotable(self) -> bool:
        """Only a voter that is not waiting to install a snapshot may campaign."""
        return self.id in self.tracker.voters and self.log.unstable.snapshot is None

    # ------------------------------------------------------------------ role transitions

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        # Randomized in [election_timeout, 2*election_timeout) so that split votes resolve.
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )
        self.lead_transferee = NONE
        self.tracker.reset_votes()
        last = self.log.last_index()
        for node_id, pr in self.tracker.progress.items():
            pr.match = last if node_id == self.id else 0
            pr.next = last + 1
            pr.recent_active = node_id == self.id
            pr.state = ProgressState.PROBE
            pr.probe_sent = False
            pr.pending_snapshot = 0
            pr.inflights.reset()
        self.pending_conf_index = 0
        self.read_only.reset()
        self.pending_reads = []

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def become_pre_candidate(self) -> None:
        # Pre-candidacy changes neither term nor vote: a node that cannot win must not force
        # the rest of the cluster into a new term.
        assert self.role is not Role.LEADER
        self.tracker.reset_votes()
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE
        # A fresh random timeout, so two nodes whose pre-votes keep failing do not stay in step.
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )

    def become_candidate(self) -> None:
        assert self.role is not Role.LEADER
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        assert self.role is Role.CANDIDATE or self.tracker.is_singleton()
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        own = self.tracker.progress.get(self.id)
        if own is not None:
            own.become_replicate()
        # Uncommitted conf changes may sit in our log; treat the whole tail as pending.
        self.pending_conf_index = self.log.last_index()
        # An entry of our own term: committing it commits everything before it, and is how we
        # learn our commit index is current (needed before serving ReadIndex).
        self._append_entries([Entry(0, 0, b"", EntryKind.NORMAL)])

    # ------------------------------------------------------------------ ticking

    def tick(self) -> None:
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.step(Message(MT.HUP, frm=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, frm=self.id))
            # A transfer that did not finish within an election timeout is abandoned, so the
            # leader accepts proposals again.
            if self.role is Role.LEADER and self.lead_transferee != NONE:
                self.lead_transferee = NONE
        if self.role is not Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, frm=self.id))

    # ------------------------------------------------------------------ sending

    def send(self, m: Message) -> None:
        assert m.type not in LOCAL, m
        if m.type in TERMLESS or m.type in (MT.VOTE, MT.PRE_VOTE, MT.VOTE_RESP, MT.PRE_VOTE_RESP):
            pass  # term set explicitly by the caller (or deliberately left 0)
        else:
            m = _replace_term(m, self.term)
        self.msgs.append(m)

    def send_append(self, to: int, send_if_empty: bool = True) -> bool:
        """Send the follower the entries it needs next (or a snapshot if they are compacted).
        Returns whether a message was sent."""
        pr = self.tracker.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        entries = self.log.entries_from(pr.next, self.max_size_per_msg)
        if prev_term is None or entries is None:
            return self._send_snapshot(to)
        if not entries and not send_if_empty:
            return False
        self.send(
            Message(
                MT.APP,
                to=to,
                frm=self.id,
                index=prev_index,
                log_term=prev_term,
                entries=tuple(entries),
                commit=self.log.committed,
            )
        )
        pr.sent_entries(len(entries), entries[-1].index if entries else prev_index)
        return True

    def _send_snapshot(self, to: int) -> bool:
        pr = self.tracker.progress[to]
        if not pr.recent_active:
            return False  # do not ship a snapshot to a node we have not heard from
        snap = self.log.snapshot()
        if snap.is_empty():
            raise AssertionError("need a snapshot but storage has none")
        pr.become_snapshot(snap.index)
        self.send(Message(MT.SNAP, to=to, frm=self.id, snapshot=snap))
        return True

    def bcast_append(self) -> None:
        for node_id in self.tracker.progress:
            if node_id != self.id:
                self.send_append(node_id)

    def bcast_heartbeat(self, ctx: bytes = b"") -> None:
        for node_id, pr in self.tracker.progress.items():
            if node_id == self.id:
                continue
            # Never tell a follower to commit past what it is known to hold.
            commit = min(pr.match, self.log.committed)
            self.send(Message(MT.HEARTBEAT, to=node_id, frm=self.id, commit=commit, context=ctx))

    # ------------------------------------------------------------------ leader bookkeeping

    def _append_entries(self, entries: list[Entry]) -> None:
        last = self.log.last_index()
        stamped = [Entry(last + 1 + i, self.term, e.data, e.kind) for i, e in enumerate(entries)]
        self.log.append(stamped)
        own = self.tracker.progress.get(self.id)
        if own is not None:
            own.maybe_update(self.log.last_index())
        self.maybe_commit()

    def maybe_commit(self) -> bool:
        if not self.log.maybe_commit(self.tracker.committed(), self.term):
            return False
        if self.pending_reads and self._committed_in_term():
            reads, self.pending_reads = self.pending_reads, []
            for req in reads:
                self._handle_read_request(req)
        return True

    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    # ------------------------------------------------------------------ elections

    def hup(self, transfer: bool = False) -> None:
        if self.role is Role.LEADER:
            return
        if not self.promotable():
            return
        if self._has_unapplied_conf_change():
            # Campaigning with a configuration that is about to change could elect a leader
            # under the wrong quorum; wait until the driver applied it.
            return
        if transfer:
            self.campaign(MT.VOTE, transfer=True)
        elif self.pre_vote:
            self.campaign(MT.PRE_VOTE)
        else:
            self.campaign(MT.VOTE)

    def _has_unapplied_conf_change(self) -> bool:
        lo = max(self.log.applied + 1, self.log.first_index())
        if lo > self.log.committed:
            return False
        # Term-0 entries are the bootstrap configuration: either already in effect (fresh
        # bootstrap) or, after a restart, this node has no configuration and cannot campaign.
        return any(
            e.kind is EntryKind.CONF_CHANGE and e.term > 0
            for e in self.log.slice(lo, self.log.committed + 1, None)
        )

    def campaign(self, vote_type: MT, transfer: bool = False) -> None:
        if vote_type is MT.PRE_VOTE:
            self.become_pre_candidate()
            term = self.term + 1  # the term we would campaign in; not adopted yet
        else:
            self.become_candidate()
            term = self.term
        self.tracker.record_vote(self.id, True)
        if self._poll_result() is VoteResult.WON:
            # A single-voter cluster wins on its own vote.
            if vote_type is MT.PRE_VOTE:
                self.campaign(MT.VOTE)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for voter in sorted(self.tracker.voters):
            if voter == self.id:
                continue
            self.send(
                Message(
                    vote_type,
                    to=voter,
                    frm=self.id,
                    term=term,
                    index=self.log.last_index(),
                    log_term=self.log.last_term(),
                    context=ctx,
                )
            )

    def _poll_result(self) -> VoteResult:
        return self.tracker.tally()[2]

    # ------------------------------------------------------------------ step

    def step(self, m: Message) -> None:
        """Feed one message (from a peer, or a local one from the driver)."""
        if m.term == 0:
            pass  # local message or termless forward
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                forced = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.election_timeout
                )
                if in_lease and not forced:
                    # Leader lease: we heard from a live leader within the election timeout,
                    # so this candidate is disruptive (e.g. just rejoined from a partition).
                    return
            if m.type is MT.PRE_VOTE:
                pass  # never change term because of a pre-vote
            elif m.type is MT.PRE_VOTE_RESP and not m.reject:
                pass  # a granted pre-vote carries the term we will campaign in
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.HEARTBEAT, MT.APP):
                # A stale leader (e.g. cut off while we moved to a higher term) learns our term
                # from this and steps down; otherwise, with check-quorum or pre-vote, we would
                # ignore it forever and it would never let go.
                self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id))
            elif m.type is MT.PRE_VOTE:
                self.send(
                    Message(MT.PRE_VOTE_RESP, to=m.frm, frm=self.id, term=self.term, reject=True)
                )
            return

        if m.type is MT.HUP:
            self.hup()
        elif m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def _handle_vote_request(self, m: Message) -> None:
        resp_type = MT.PRE_VOTE_RESP if m.type is MT.PRE_VOTE else MT.VOTE_RESP
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type is MT.PRE_VOTE and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # The response to a pre-vote carries the candidate's future term so it is not
            # discarded as stale; a real vote is recorded (and must be persisted) first.
            self.send(Message(resp_type, to=m.frm, frm=self.id, term=m.term))
            if m.type is MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.send(Message(resp_type, to=m.frm, frm=self.id, term=self.term, reject=True))

    # ------------------------------------------------------------------ leader

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t is MT.BEAT:
            self.bcast_heartbeat()
            return
        if t is MT.CHECK_QUORUM:
            if not self.tracker.quorum_active(self.id):
                self.become_follower(self.term, NONE)
            for node_id, pr in self.tracker.progress.items():
                pr.recent_active = node_id == self.id
            return
        if t is MT.PROP:
            self._leader_propose(m)
            return
        if t is MT.READ_INDEX:
            req = ReadRequest(m.frm if m.frm != self.id else NONE, m.context, 0)
            if not self._committed_in_term():
                # Our commit index may lag the previous leader's: wait for our first commit.
                self.pending_reads.append(req)
            else:
                self._handle_read_request(req)
            return

        pr = self.tracker.progress.get(m.frm)
        if pr is None:
            return
        if t is MT.APP_RESP:
            self._handle_append_response(m, pr)
        elif t is MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                # Appends in the window may have been lost; free one slot so the next append
                # goes out, and a rejection (if there is a gap) puts the follower back to probe.
                pr.inflights.free_first()
            if pr.match < self.log.last_index():
                self.send_append(m.frm)
            round_id = decode_round(m.context)
            if round_id is not None:
                rnd = self.read_only.recv_ack(m.frm, round_id)
                if rnd is not None and self.tracker.has_quorum(rnd.acks):
                    for req in self.read_only.release(round_id):
                        self._respond_read(req)
        elif t is MT.SNAP_STATUS:
            if pr.state is not ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for a heartbeat response before probing, so a failed send is not retried in
            # a tight loop.
            pr.probe_sent = True
        elif t is MT.UNREACHABLE:
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
        elif t is MT.TRANSFER_LEADER:
            self._handle_transfer(m, pr)

    def _drop(self, m: Message, reason: str) -> None:
        """Refuse a proposal: loudly if our own driver made it, silently if it was forwarded
        by a peer (whose driver times the request out)."""
        if m.frm in (NONE, self.id):
            raise ProposalDropped(reason)

    def _leader_propose(self, m: Message) -> None:
        if not m.entries:
            raise ValueError("empty proposal")
        if self.id not in self.tracker.progress:
            return self._drop(m, "this node was removed from the cluster")
        if self.lead_transferee != NONE:
            return self._drop(m, "leadership transfer in progress")
        entries = list(m.entries)
        conf_index = 0
        for i, e in enumerate(entries):
            if e.kind is EntryKind.CONF_CHANGE:
                if conf_index or self.pending_conf_index > self.log.applied:
                    return self._drop(m, "a configuration change is already pending")
                conf_index = self.log.last_index() + i + 1
        if conf_index:
            self.pending_conf_index = conf_index
        self._append_entries(entries)
        # Appends go out when the driver next collects a Ready, so every proposal made in
        # between travels in one message per follower (and is fsynced in one batch).
        self.appends_pending = True

    def flush_appends(self) -> None:
        """Send followers the entries proposed since the last Ready."""
        if self.appends_pending:
            self.appends_pending = False
            if self.role is Role.LEADER:
                self.bcast_append()

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                # Skip every entry of ours whose term is above the follower's term at the hint:
                # none of them can match (fast backtracking, one round trip per term).
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        was_paused = pr.is_paused()
        if pr.maybe_update(m.index):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT and pr.match + 1 >= self.log.first_index():
                # The follower caught up past the compaction point: resume normal appends.
                pr.become_probe()
                pr.become_replicate()
            elif pr.state is ProgressState.REPLICATE:
                pr.inflights.free_le(m.index)
            if self.maybe_commit():
                self.bcast_append()
            elif was_paused:
                self.send_append(m.frm)
            # Fill the freed window with whatever is still unsent.
            while self.send_append(m.frm, send_if_empty=False):
                pass
            if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                self.send(Message(MT.TIMEOUT_NOW, to=m.frm, frm=self.id))

    def _handle_transfer(self, m: Message, pr: Progress) -> None:
        transferee = m.frm
        if pr.is_learner or transferee == self.id:
            return
        if self.lead_transferee != NONE:
            if self.lead_transferee == transferee:
                return  # already under way
            self.lead_transferee = NONE
        self.lead_transferee = transferee
        # The transfer must finish within one election timeout or it is abandoned.
        self.election_elapsed = 0
        if pr.match == self.log.last_index():
            self.send(Message(MT.TIMEOUT_NOW, to=transferee, frm=self.id))
        else:
            self.send_append(transferee)  # catch it up first; TIMEOUT_NOW follows its ack

    def _handle_read_request(self, req: ReadRequest) -> None:
        req.index = self.log.committed
        if self.tracker.is_singleton() and self.id in self.tracker.voters:
            self._respond_read(req)
        else:
            self.read_only.add(req)

    def flush_reads(self) -> None:
        """Start one heartbeat round for every read queued since the last round."""
        if self.role is not Role.LEADER:
            return
        rnd = self.read_only.flush(self.id)
        if rnd is None:
            return
        if self.tracker.has_quorum(rnd.acks):
            for req in self.read_only.release(rnd.round_id):
                self._respond_read(req)
            return
        self.bcast_heartbeat(encode_round(rnd.round_id))

    def _respond_read(self, req: ReadRequest) -> None:
        if req.frm == NONE or req.frm == self.id:
            self.read_states.append(ReadState(req.index, req.ctx))
        else:
            self.send(
                Message(
                    MT.READ_INDEX_RESP, to=req.frm, frm=self.id, index=req.index, context=req.ctx
                )
            )

    # ------------------------------------------------------------------ candidate

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = MT.PRE_VOTE_RESP if self.role is Role.PRE_CANDIDATE else MT.VOTE_RESP
        if t is MT.PROP:
            self._drop(m, "no leader")
            return
        if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            # Someone won this term (m.term == our term here).
            self.become_follower(m.term, m.frm)
            self._step_follower(m)
        elif t is my_resp:
            self.tracker.record_vote(m.frm, not m.reject)
            result = self._poll_result()
            if result is VoteResult.WON:
                if self.role is Role.PRE_CANDIDATE:
                    self.campaign(MT.VOTE)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif result is VoteResult.LOST:
                self.become_follower(self.term, NONE)
        # TIMEOUT_NOW, READ_INDEX etc. are ignored: there is no leader to serve them.

    # ------------------------------------------------------------------ follower

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t is MT.PROP:
            if self.lead == NONE:
                self._drop(m, "no leader")
                return
            self.send(_retarget(m, self.lead))
        elif t is MT.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif t is MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self.send(Message(MT.HEARTBEAT_RESP, to=m.frm, frm=self.id, context=m.context))
        elif t is MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t is MT.TRANSFER_LEADER:
            if self.lead != NONE:
                self.send(_retarget(m, self.lead))
        elif t is MT.TIMEOUT_NOW:
            self.hup(transfer=True)
        elif t is MT.READ_INDEX:
            if self.lead != NONE:
                self.send(_retarget(m, self.lead))
            # Without a leader the read is dropped; the driver times it out and retries.
        elif t is MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            # Everything up to our commit index is settled; tell the leader where we are.
            self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, index=self.log.committed))
            return
        last = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last is not None:
            self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, index=last))
            return
        # Mismatch at m.index. Hint the leader at the last index that could possibly match:
        # the largest index <= m.index whose term is <= the leader's term there.
        hint_index = min(m.index, self.log.last_index())
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.log_term)
        self.send(
            Message(
                MT.APP_RESP,
                to=m.frm,
                frm=self.id,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        if self.restore(m.snapshot):
            self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, index=self.log.last_index()))
        else:
            self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, index=self.log.committed))

    def restore(self, snap: Snapshot) -> bool:
        """Install a leader's snapshot unless our log already covers it. Returns whether the
        snapshot replaced our log (it then appears in the next Ready)."""
        if snap.index <= self.log.committed:
            return False
        # The snapshot's configuration may not include us yet: a node added after the leader's
        # last snapshot is caught up with it, and learns of its own addition from the entries
        # that follow. Until then it is not in its voter set, so it cannot campaign.
        cs = snap.metadata.conf_state
        if self.log.match_term(snap.index, snap.term):
            # We hold that entry already: just fast-forward the commit index.
            self.log.commit_to(snap.index)
            return False
        self.log.restore(snap)
        self._apply_conf_state(cs)
        return True

    # ------------------------------------------------------------------ membership

    def _apply_conf_state(self, cs: ConfState) -> None:
        tracker = self.tracker
        tracker.voters = set(cs.voters)
        tracker.learners = set(cs.learners)
        members = tracker.voters | tracker.learners
        for node_id in list(tracker.progress):
            if node_id not in members:
                del tracker.progress[node_id]
        nxt = self.log.last_index() + 1
        for node_id in members:
            pr = tracker.progress.get(node_id)
            if pr is None:
                pr = tracker.new_progress(nxt, node_id in tracker.learners)
                if node_id == self.id:
                    pr.match = self.log.last_index()
                tracker.progress[node_id] = pr
            pr.is_learner = node_id in tracker.learners

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Make a committed membership change effective on this node."""
        voters = set(self.tracker.voters)
        learners = set(self.tracker.learners)
        if cc.type is ConfChangeType.ADD_VOTER:
            learners.discard(cc.node_id)
            voters.add(cc.node_id)
        elif cc.type is ConfChangeType.ADD_LEARNER:
            voters.discard(cc.node_id)
            learners.add(cc.node_id)
        else:
            voters.discard(cc.node_id)
            learners.discard(cc.node_id)
        self._apply_conf_state(ConfState(tuple(sorted(voters)), tuple(sorted(learners))))
        cs = self.tracker.conf_state()
        if self.role is not Role.LEADER:
            return cs
        if self.id not in self.tracker.voters:
            # Removed (or demoted): a leader outside the voter set must not keep leading.
            self.become_follower(self.term, NONE)
            return cs
        if self.lead_transferee != NONE and self.lead_transferee not in self.tracker.voters:
            self.lead_transferee = NONE
        # The quorum may have shrunk, so entries may now be committed.
        if self.maybe_commit():
            self.bcast_append()
        else:
            # New members need their first probe.
            for node_id, pr in self.tracker.progress.items():
                if node_id != self.id and pr.match == 0 and not pr.probe_sent:
                    self.send_append(node_id)
        return cs


def _replace_term(m: Message, term: int) -> Message:
    if m.term == term:
        return m
    return Message(
        m.type,
        m.to,
        m.frm,
        term,
        m.log_term,
        m.index,
        m.entries,
        m.commit,
        m.snapshot,
        m.reject,
        m.reject_hint,
        m.context,
    )


def _retarget(m: Message, to: int) -> Message:
    return Message(
        m.type,
        to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        m.entries,
        m.commit,
        m.snapshot,
        m.reject,
        m.reject_hint,
        m.context,
    )
