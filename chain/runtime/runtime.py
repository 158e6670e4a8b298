"""`NodeRuntime`: one node, sans-IO: the consensus core with its link layer and transmit
queue, the chain store, the device's own signed transactions, and the final commands it
executes.

`blockiot node` (chain/runtime/realtime.py: a radio driver, the wall clock, a control
socket, actuator hooks) and the field simulator (hil/sim/fieldsim.py: flooding over a
simulated channel, virtual time) drive this one class; only what lies below it and what
calls it differ.

    rt = NodeRuntime(core, link, TransmitQueue(airtime, budget), store=store, actuate=True)
    rt.receive(frame, sender, now, hops=0, rssi=-92.0, snr=6.5)   # a frame the radio heard
    rt.tick(now)                                                 # when rt.next_deadline() is due
    submitted = rt.submit(Reading(Sensor.MOISTURE, 287), now)    # the device's own transaction
    frame = rt.next_frame(now)                                   # put it on air now, or None
    for action in rt.take_actions(): ...                         # `Execute`: run it, then rt.report(command, ok, status, now)

Order of effects for each core output (docs/PROTOCOL.md §10): the validator's lock and
the finalized blocks reach the store before any message goes out. Core events, and the
runtime's own (`FinalBlock` for each block stored, `Reported`, link drops), go to
`on_event(event, now)`.

Commands: once a block is final, each command it holds for this device (a member's
COMMAND or a rule's output, `commands_in_block`) becomes an `Execute` action, once per
process (at start: those final and not yet reported, `due_commands`); the caller runs the actuator and calls `report(command, ok, now)`, which signs
the report: the same action and arguments addressed to itself when it worked (which
clears a rule's pending command), `Action.REPORT` with (action, exit status) when it did
not. A command final before a crash and reported after it is executed again after the
restart: at least once, never silently lost.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

from blockiot.chain.commands import DueCommand, commands_in_block, due_commands
from blockiot.chain.consensus.events import PRIORITY_SYNC, EvidenceToRecord, Output, Rejected
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.ledger import AppliedBlock
from blockiot.chain.state import LedgerState
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import Action, Command, EquivocationProof, sign_tx, tx_id
from blockiot.radio.link import Delivered, Dropped, Link, Transmit

from .transmit import Frame, TransmitQueue

PEERS_KEPT = 64
# Nonces are reserved this many at a time (`reserve_nonces`, kept on disk): after a restart
# the node goes on above the reservation, so no nonce of a tx still in flight is signed twice.
# Without a reservation it skips this many past the last one final on chain.
NONCE_RESTART_GAP = 64
# A caller that converts between clocks (the simulator's drifting ones) may wake a hair
# before a deadline it was given; that still counts as due.
TIMER_SLACK_S = 1e-9
REJECTIONS_KEPT = 16
STARTED_KEPT = 1024  # commands remembered as started, against running one twice


@dataclass(frozen=True)
class Execute:
    """Run this final command addressed to this device, then `NodeRuntime.report` it."""

    command: DueCommand


@dataclass(frozen=True)
class FinalBlock:
    """A block this node just finalized and stored (its txs decoded in `block.txs`, raw)."""

    applied: AppliedBlock


@dataclass(frozen=True)
class Submitted:
    """The device's own transaction: its id, and why the node refused it (None: accepted)."""

    tx_id: bytes
    rejected: Rejected | None = None


@dataclass(frozen=True)
class Reported:
    """This device reported a command it executed (`ok` False: the actuator failed)."""

    action: int
    args: tuple[int, ...]
    ok: bool
    status: int


@dataclass
class Peer:
    """A radio heard directly or through relays: its last frame's signal and hop count."""

    last_heard: float
    hops: int
    rssi: float | None
    snr: float | None
    frames: int = 1


class NodeRuntime:
    """The consensus core and what surrounds it on one node, without IO."""

    def __init__(
        self,
        core: NodeCore,
        link: Link,
        transmit: TransmitQueue,
        *,
        store: ChainStore | None = None,
        actuate: bool = False,
        record_evidence: bool = True,
        on_event: Callable[[object, float], None] | None = None,
        last_nonce: int | None = None,
        reserve_nonces: Callable[[int], None] | None = None,
    ) -> None:
        """`last_nonce`: the last nonce this device signed, when the caller knows it (e.g.
        the last reservation); else the last one final on chain plus `NONCE_RESTART_GAP`.
        `reserve_nonces(n)`: keep n on disk before any nonce up to n is signed."""
        self.core = core
        self.link = link
        self.transmit = transmit
        self.store = store
        self.record_evidence = record_evidence
        self.on_event = on_event
        self.peers: OrderedDict[int, Peer] = OrderedDict()
        self.rejections: deque[Rejected] = deque(maxlen=REJECTIONS_KEPT)
        self.link_drops: dict[str, int] = {}
        self._actions: list[Execute] = []
        self._started: OrderedDict[DueCommand, None] = OrderedDict()  # bounded: STARTED_KEPT
        if last_nonce is None and core.member is not None:
            last_nonce = (core.ledger.state.get("nonce", (core.member,)) or (0,))[0] + NONCE_RESTART_GAP
        if core.member is not None:
            final_nonce = (core.ledger.state.get("nonce", (core.member,)) or (0,))[0]
            last_nonce = max(last_nonce or 0, final_nonce)
        self.last_nonce = last_nonce or 0
        self.reserve_nonces = reserve_nonces
        self._reserved = self.last_nonce
        self.final: LedgerState | None = None  # the finalized state, kept when this node executes commands
        if actuate:
            if core.member is None:
                raise ValueError("only a member's node executes commands")
            self.final = LedgerState(core.genesis)
            if store is not None:
                store.load_into(self.final)
            self._start(due_commands(self.final, core.member))  # final before a restart, not reported

    # --- inputs ------------------------------------------------------------------------

    def receive(self, frame: bytes, sender: int, now: float, *, hops: int,
                rssi: float | None = None, snr: float | None = None) -> None:
        """A link frame the radio heard from `sender` through `hops` relays (0: directly)."""
        peer = self.peers.pop(sender, None)
        if peer is None:
            peer = Peer(now, hops, rssi, snr, 0)
        peer.last_heard, peer.hops, peer.rssi, peer.snr = now, hops, rssi, snr
        peer.frames += 1
        self.peers[sender] = peer
        while len(self.peers) > PEERS_KEPT:
            self.peers.popitem(last=False)
        self._link_events(self.link.receive(frame, sender, now), now, hops)

    def tick(self, now: float) -> None:
        """Run the core's and the link's timers that are due at `now`."""
        due = self.core.next_deadline()
        if due is not None and due <= now + TIMER_SLACK_S:
            self._apply(self.core.tick(now), now)
        self._link_events(self.link.poll(now), now, 0)

    def submit(self, body, now: float) -> Submitted:
        """Sign `body` (a wire tx body) as this device, hand it to the core, flood it."""
        raw = self.sign(body)
        out = self.core.submit(raw, now)
        rejected = next((e for e in out.events if isinstance(e, Rejected)), None)
        self._apply(out, now)
        return Submitted(tx_id(raw), rejected)

    def sign(self, body) -> bytes:
        """`body` as this device's signed tx with the next nonce (a counter: few bytes on air)."""
        core = self.core
        if core.identity is None or core.member is None:
            raise ValueError("a node without a member identity signs nothing")
        if self.reserve_nonces is not None and self.last_nonce >= self._reserved:
            self._reserved = self.last_nonce + NONCE_RESTART_GAP
            self.reserve_nonces(self._reserved)
        self.last_nonce += 1
        return sign_tx(core.identity, core.genesis.chain_id, core.member, self.last_nonce, body).raw

    def report(self, command: DueCommand, ok: bool, status: int, now: float) -> Submitted:
        """The signed report of a command this device executed (see the module docstring)."""
        member = self.core.member
        body = command.report(member) if ok else Command(member, Action.REPORT, (command.action, status & 0xFF))
        self._emit(Reported(command.action, command.args, ok, status), now)
        return self.submit(body, now)

    def send_message(self, payload: bytes, *, hop_limit: int | None, priority: int, kind: str, now: float) -> None:
        """Queue a whole message of ours (the core's, or a test's) as link frames."""
        for data in self.link.send(payload, now):
            self.transmit.push(Frame(data, hop_limit, priority, kind))

    # --- outputs -----------------------------------------------------------------------

    def next_frame(self, now: float) -> Frame | None:
        """The frame to put on air now (its airtime is then counted), or None."""
        return self.transmit.pop(now)

    def next_deadline(self) -> float | None:
        """When `tick` has something to do, or None (`transmit.ready_at()` says when
        `next_frame` may have a frame)."""
        times = [t for t in (self.core.next_deadline(), self.link.next_deadline()) if t is not None]
        return min(times, default=None)

    def take_actions(self) -> list[Execute]:
        actions, self._actions = self._actions, []
        return actions

    # --- internals ---------------------------------------------------------------------

    def _link_events(self, events, now: float, hops: int) -> None:
        for event in events:
            if isinstance(event, Delivered):
                self._apply(self.core.receive(event.payload, now, origin=event.sender, hops=hops), now)
            elif isinstance(event, Transmit):  # a repair request or answer: for the neighbours only
                self.transmit.push(Frame(event.frame, 0, PRIORITY_SYNC, "link-repair"))
            elif isinstance(event, Dropped):
                reason = str(event.reason)
                self.link_drops[reason] = self.link_drops.get(reason, 0) + 1
                self._emit(event, now)

    def _apply(self, out: Output, now: float) -> None:
        if self.store is not None:
            if out.lock is not None:
                self.store.set_lock(out.lock)
            for applied in out.persist:
                self.store.append(applied)
        if self.final is not None:
            for applied in out.persist:
                self.final.redo(applied.diff)
                self._start(commands_in_block(applied, self.core.member))
        for applied in out.persist:
            self._emit(FinalBlock(applied), now)
        for send in out.sends:
            self.send_message(send.payload, hop_limit=send.hop_limit, priority=send.priority,
                              kind=send.kind.name, now=now)
        for event in out.events:
            if isinstance(event, Rejected):
                self.rejections.append(event)
            self._emit(event, now)
            if isinstance(event, EvidenceToRecord) and self.record_evidence and self.core.member is not None:
                self.submit(EquivocationProof(event.evidence), now)

    def _start(self, commands: list[DueCommand]) -> None:
        for command in commands:
            if command not in self._started:
                self._started[command] = None
                while len(self._started) > STARTED_KEPT:
                    self._started.popitem(last=False)
                self._actions.append(Execute(command))

    def _emit(self, event, now: float) -> None:
        if self.on_event is not None:
            self.on_event(event, now)
