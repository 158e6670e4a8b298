"""An adversarial network for consensus cores, with safety and liveness checked after
every step.

`AdversaryCluster` runs `n` validators and some non-validator members, each a real
`NodeCore`, on an in-memory network that an `Adversary` runs message by message. Pure and
deterministic: time is simulated (`STEPS_PER_SLOT` steps per slot), randomness comes only
from seeded `random.Random`s; no clock, radio or disk is touched.

*The network.* Every message a core sends is offered to the adversary once per other
node, as a `Packet`; the adversary answers `Deliver(delay, rank)` (after `delay` steps, 0:
within this step; among messages due in one step, lower `rank` first: reordering) or None
(lost). Mesh relays and direct addressing are not modelled: any node may hear anything.
`heal()` takes the network away from the adversary: honest nodes then hear each other
within the step, and Byzantine validators fall silent (the worst case for a quorum).

*Byzantine validators are Twins* (Bano et al., "Twins: BFT Systems Made Robust", 2021): a
Byzantine validator "D" is two honest cores holding its key, "D" and "D'", each with its
own view of the network. What the adversary does with their messages is the Byzantine
behaviour: when the twins' views differ, or one twin was handed a private transaction
(`diverge`), they sign two different blocks for one slot (equivocation); giving each
twin's block to different nodes is selective sending; dropping or delaying it is
withholding. There is no other Byzantine code.

*Invariants*, over honest nodes only (`violations`):
  - `conflict`: two honest nodes finalized different blocks at one height, i.e. their
    finalized chains are not prefixes of one another;
  - `revert`: an honest node's finalized height went down, or a height changed block;
  - `stalled`: after `heal()`, an honest node did not finalize a block of a slot at or
    after the heal within the bound given to `run_until_resumed`.

`RandomSchedule` with `run_schedule` / `search` is the seeded random search behind
`blockiot bench safety`: each schedule is an adversarial phase (loss, delay, reordering,
flapping partitions, Byzantine twins) and then a heal; a schedule is replayed from its
(seed, n) alone.
"""
from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field

from blockiot.chain.consensus.events import Event, Finalized, Output
from blockiot.chain.consensus.messages import MsgType, decode_message
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.params import ConsensusParams
from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.wire import Reading, Sensor, sign_tx

SLOT_SECONDS = 30
STEPS_PER_SLOT = 20
READING_EVERY = 4  # slots between two readings of one member
SCHEDULE_MEMBERS = 2  # non-validators in each random schedule


def make_genesis(n: int, members: int) -> tuple[Genesis, list[Identity]]:
    """A cluster of `n` validators (registry 0..n-1) and `members` other members."""
    identities = [Identity.from_seed((i + 1).to_bytes(2, "big") * 16) for i in range(n + members)]
    roster = tuple(
        Member(i, ident.public_key, "validator" if i < n else "member", (), node_name(i, n))
        for i, ident in enumerate(identities)
    )
    return Genesis("adversary", 0, Params(slot_seconds=SLOT_SECONDS), roster), identities


def node_name(member: int, n: int) -> str:
    """Validators A, B, C, ... (leaders of slots 0, 1, 2, ... mod n), members m0, m1, ..."""
    if member >= n:
        return f"m{member - n}"
    return chr(ord("A") + member) if member < 26 else f"V{member}"


@dataclass
class Node:
    """One core on the network; a Byzantine validator is two of these (twins)."""

    name: str
    member: int  # registry index, shared by twins
    core: NodeCore
    honest: bool

    @property
    def radio_id(self) -> int:
        return self.member + 1


@dataclass(frozen=True)
class Packet:
    """One message on its way from one node to one other; `slot` is a BLOCK's slot."""

    sender: str
    recipient: str
    kind: MsgType
    slot: int | None
    payload: bytes


@dataclass(frozen=True)
class Deliver:
    delay: int = 0  # steps; 0: within this step
    rank: float = 0.0  # order among the messages due in one step


@dataclass(frozen=True)
class Violation:
    kind: str  # conflict, revert or stalled
    slot: int
    detail: str


class Invariants:
    """Safety over honest nodes, fed what each finalizes (`finalized`, in event order) and
    where its finalized root is after every step (`root`). A violation is recorded once per
    kind and node: a node on a split chain conflicts again at every later height."""

    def __init__(self, names: list[str]) -> None:
        self.violations: list[Violation] = []
        self._final: dict[str, dict[int, bytes]] = {name: {} for name in names}
        self._agreed: dict[int, tuple[bytes, str]] = {}  # height -> (id, the node that finalized it first)
        self._reported: set[tuple[str, str]] = set()

    def finalized(self, name: str, height: int, block_id: bytes, slot: int) -> None:
        final = self._final[name]
        if final.get(height, block_id) != block_id:
            self.record("revert", name, slot, f"{name} finalized a second block at height {height}")
        final[height] = block_id
        agreed, first = self._agreed.setdefault(height, (block_id, name))
        if agreed != block_id:
            self.record("conflict", name, slot, f"{name} and {first} finalized different blocks at height {height}")

    def root(self, name: str, height: int, block_id: bytes, slot: int) -> None:
        final = self._final[name]
        top = max(final, default=0)
        if height < top or final.get(height, block_id) != block_id:
            self.record("revert", name, slot, f"{name} is at finalized block {block_id.hex()[:8]}, "
                                              f"height {height}, after height {top}")

    def record(self, kind: str, name: str, slot: int, detail: str) -> None:
        if (kind, name) not in self._reported:
            self._reported.add((kind, name))
            self.violations.append(Violation(kind, slot, detail))


class Adversary:
    """Decides every delivery, in this order. Rules: a block in `lose[(sender, slot)]` never
    reaches the nodes named there; one in `delay[(sender, slot)]` reaches the named nodes
    that many steps late. Partition: nothing crosses between the `groups` (node name ->
    group; None: no partition). Twins: a twin in `sides` hears and reaches only the honest
    nodes of its side, and honest traffic between two sides is lost with probability
    `cross`. Then a block flood is lost with probability `block_loss`, any packet with
    probability `loss`; it is delayed by up to `max_delay` steps and, with `reorder`, may be
    overtaken by others due in the same step. The defaults deliver everything at once."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random(0)
        self.lose: dict[tuple[str, int], set[str]] = {}
        self.delay: dict[tuple[str, int], dict[str, int]] = {}
        self.groups: dict[str, int] | None = None
        self.sides: dict[str, set[str]] = {}  # twin -> the honest nodes on its side
        self.cross = 0.0
        self.block_loss = 0.0
        self.loss = 0.0
        self.max_delay = 0
        self.reorder = False

    def on_slot(self, cluster: "AdversaryCluster", slot: int) -> None:
        """Called as `slot` starts, before anyone acts in it."""

    def decide(self, cluster: "AdversaryCluster", packet: Packet) -> Deliver | None:
        sender, recipient = packet.sender, packet.recipient
        if recipient in self.lose.get((sender, packet.slot), ()):
            return None
        late = self.delay.get((sender, packet.slot), {}).get(recipient)
        if late is not None:
            return Deliver(late)
        if self.groups is not None and self.groups.get(sender) != self.groups.get(recipient):
            return None
        if sender in self.sides or recipient in self.sides:  # a twin hears and reaches its side only
            if recipient not in self.sides.get(sender, {recipient}) or sender not in self.sides.get(recipient, {sender}):
                return None
        elif any((sender in side) != (recipient in side) for side in self.sides.values()):  # honest, across sides
            if self.rng.random() < self.cross:
                return None
        if packet.kind is MsgType.BLOCK and self.rng.random() < self.block_loss:
            return None
        if self.rng.random() < self.loss:
            return None
        delay = self.rng.randint(0, self.max_delay) if self.max_delay else 0
        return Deliver(delay, self.rng.random() if self.reorder else 0.0)


class AdversaryCluster:
    """`n` validators, the last `byzantine` of them twins, and `members` non-validators, on a
    network run by `adversary`; `step()` moves one step and checks the invariants."""

    def __init__(self, n: int, *, members: int = 2, byzantine: int = 0, adversary: Adversary | None = None,
                 seed: int = 0, readings: bool = True) -> None:
        if not 0 <= byzantine <= (n - 1) // 3:
            raise ValueError(f"at most f = {(n - 1) // 3} of {n} validators may be Byzantine, not {byzantine}")
        self.genesis, self.identities = make_genesis(n, members)
        self.params = ConsensusParams.from_genesis(self.genesis, tx_settle_s=0.0)
        self.adversary = adversary or Adversary()
        self.readings = readings
        self.steps = 0
        self.now = float(self.genesis.genesis_time)
        self.nodes: list[Node] = []
        for member in range(n + members):
            name = node_name(member, n)
            twins = [name, name + "'"] if n - byzantine <= member < n else [name]
            for copy, twin in enumerate(twins):
                rng = random.Random(f"{seed}/{member}/{copy}")
                core = NodeCore(self.genesis, radio_id=member + 1, rng=rng, now=self.now,
                                identity=self.identities[member], params=self.params)
                self.nodes.append(Node(twin, member, core, honest=len(twins) == 1))
        self.by_name = {node.name: node for node in self.nodes}
        self.nonces = [0] * (n + members)
        self.events: dict[str, list[Event]] = {node.name: [] for node in self.nodes}
        self.invariants = Invariants([node.name for node in self.honest])
        self.latencies: list[float] = []  # slots from a block's slot to its finalization, per honest node
        self.healed_at: int | None = None
        self._queue: list[tuple[int, float, int, Packet]] = []
        self._seq = itertools.count()
        self._resumed: dict[str, float] = {}

    # --- views ---------------------------------------------------------------------------

    @property
    def honest(self) -> list[Node]:
        return [node for node in self.nodes if node.honest]

    @property
    def slot(self) -> int:
        """The slot the simulated time is in."""
        return self.params.slot_at(self.now)

    def signers(self, slot: int) -> list[Node]:
        """The node that signs the block of `slot`: its leader, or the leader's two twins."""
        return [node for node in self.nodes if node.member == self.params.leader(slot)]

    @property
    def violations(self) -> list[Violation]:
        return self.invariants.violations

    # --- driving -----------------------------------------------------------------------

    def step(self) -> None:
        """One step: slot start hooks, due timers, due messages, then the invariants."""
        before = self.slot
        self.steps += 1
        # Mid-step times: a slot's first step comes after its start, so its leader's timer
        # is due before anything is delivered in it.
        self.now = self.genesis.genesis_time + (self.steps - 0.5) * self.params.slot_seconds / STEPS_PER_SLOT
        if self.slot != before:
            self._slot_starts(self.slot)
        for node in self.nodes:
            deadline = node.core.next_deadline()
            if deadline is not None and deadline <= self.now:
                self._emit(node, node.core.tick(self.now))
        while self._queue and self._queue[0][0] <= self.steps:
            packet = heapq.heappop(self._queue)[-1]
            node = self.by_name[packet.recipient]
            origin = self.by_name[packet.sender].radio_id
            self._emit(node, node.core.receive(packet.payload, self.now, origin=origin, hops=0))
        for node in self.honest:
            self.invariants.root(node.name, node.core.finalized.height, node.core.finalized.id, self.slot)

    def run_slots(self, slots: int, *, stop_on_violation: bool = False) -> None:
        for _ in range(slots * STEPS_PER_SLOT):
            self.step()
            if stop_on_violation and self.violations:
                return

    def diverge(self, name: str) -> None:
        """Hand the twin `name` a transaction of its own that nobody else hears: its next
        block differs from its twin's even on the same parent."""
        node = self.by_name[name]
        node.core.submit(self._reading(node.member), self.now)  # its TX flood is never sent

    def heal(self) -> None:
        """From now on honest nodes hear each other within the step; Byzantine twins are silent.
        Liveness counts from the next slot, the first one entirely healed."""
        self.healed_at = self.slot + 1
        self._resumed = {}

    def unheal(self) -> None:
        """Give the network back to the adversary."""
        self.healed_at = None

    def run_until_resumed(self, bound: int) -> float | None:
        """After `heal()`: run until every honest node has finalized a block of a slot at or
        after the heal; the slots that took (the slowest node), or None (and a `stalled`
        violation) if `bound` slots were not enough."""
        while len(self._resumed) < len(self.honest):
            if self.slot - self.healed_at >= bound:
                waiting = sorted({node.name for node in self.honest} - set(self._resumed))
                self.invariants.record("stalled", ",".join(waiting), self.slot, f"no new finalized block at "
                                       f"{waiting} {bound} slots after the heal at slot {self.healed_at}")
                return None
            self.step()
        return max(self._resumed.values())

    # --- internals ---------------------------------------------------------------------

    def _slot_starts(self, slot: int) -> None:
        self.adversary.on_slot(self, slot)
        if not self.readings:
            return
        for node in self.honest:
            if node.member >= self.params.n and slot % READING_EVERY == node.member % READING_EVERY:
                self._emit(node, node.core.submit(self._reading(node.member), self.now))

    def _reading(self, member: int) -> bytes:
        self.nonces[member] += 1
        tx = sign_tx(self.identities[member], self.genesis.chain_id, member, self.nonces[member],
                     Reading(Sensor.MOISTURE, self.nonces[member]))
        return tx.raw

    def _emit(self, node: Node, out: Output) -> None:
        self.events[node.name].extend(out.events)
        if node.honest:
            for event in out.events:
                if isinstance(event, Finalized):
                    self._on_finalized(node, event)
        for send in out.sends:
            slot = decode_message(send.payload).compact.header.slot if send.kind is MsgType.BLOCK else None
            for other in self.nodes:
                if other is node:
                    continue
                packet = Packet(node.name, other.name, send.kind, slot, send.payload)
                verdict = self.adversary.decide(self, packet) if self.healed_at is None else self._healed(node)
                if verdict is not None:
                    heapq.heappush(self._queue, (self.steps + verdict.delay, verdict.rank, next(self._seq), packet))

    @staticmethod
    def _healed(sender: Node) -> Deliver | None:
        return Deliver() if sender.honest else None

    def _on_finalized(self, node: Node, event: Finalized) -> None:
        self.invariants.finalized(node.name, event.height, event.id, self.slot)
        latency = (event.at - self.params.slot_start(event.slot)) / self.params.slot_seconds
        self.latencies.append(latency)
        if self.healed_at is not None and event.slot >= self.healed_at and node.name not in self._resumed:
            self._resumed[node.name] = (event.at - self.params.slot_start(self.healed_at)) / self.params.slot_seconds


# --- the seeded random search ----------------------------------------------------------------


def resume_bound(n: int) -> int:
    """Slots within which every honest node must finalize a block made after a heal:
    docs/PROTOCOL.md §6.5 promises about 2n + q with f silent leaders, and 3n >= 2n + q.
    (Issue 8 aims at 2n; `blockiot bench safety` counts the heals that took longer.)"""
    return 3 * n


class RandomSchedule(Adversary):
    """The adversary of the random search. Every 1-3 slots (a period) it redraws the loss
    rate of block floods (up to `max_block_loss`) and of all other traffic (up to
    `max_loss`), and with probability `partitions` a partition of all nodes into two
    groups. Byzantine validators play the twins attack of issue 8: as a Byzantine slot
    starts, with probability `split` the honest nodes are dealt to the twins' two sides
    until the validator's next slot (a twin hears and reaches its side only; honest traffic
    between the sides is lost with probability `cross`). A slot ahead, with probability
    `equivocate` the second twin is handed a private transaction (so the sides get
    different blocks even on one parent), and with probability `withhold` each twin's block
    reaches everyone up to a round late."""

    def __init__(self, rng: random.Random, *, max_block_loss: float, max_loss: float, max_delay: int,
                 reorder: bool, partitions: float, split: float, cross: float, equivocate: float,
                 withhold: float) -> None:
        super().__init__(rng)
        self.max_block_loss = max_block_loss
        self.max_loss = max_loss
        self.max_delay = max_delay
        self.reorder = reorder
        self.partitions = partitions
        self.split = split
        self.cross = cross
        self.equivocate = equivocate
        self.withhold = withhold
        self._period_end = 0

    def on_slot(self, cluster: "AdversaryCluster", slot: int) -> None:
        rng = self.rng
        if slot >= self._period_end:
            self._period_end = slot + rng.randint(1, 3)
            self.block_loss = rng.uniform(0.0, self.max_block_loss)
            self.loss = rng.uniform(0.0, self.max_loss)
            self.groups = None
            if rng.random() < self.partitions:
                self.groups = {node.name: rng.randrange(2) for node in cluster.nodes}
        twins = [node.name for node in cluster.signers(slot) if not node.honest]
        for twin in twins:
            self.sides.pop(twin, None)
        if twins and rng.random() < self.split:
            side = {node.name for node in cluster.honest if rng.random() < 0.5}
            self.sides.update({twins[0]: side, twins[1]: {node.name for node in cluster.honest} - side})
        twins = [node.name for node in cluster.signers(slot + 1) if not node.honest]
        if twins and rng.random() < self.equivocate:
            cluster.diverge(twins[1])
        for twin in twins:
            if rng.random() < self.withhold:
                late = rng.randint(1, STEPS_PER_SLOT * cluster.params.n)
                self.delay[twin, slot + 1] = {node.name: late for node in cluster.nodes}


@dataclass(frozen=True)
class ScheduleResult:
    """One random schedule: what it was, what broke, and how long finality took."""

    seed: int
    n: int
    setup: str
    slots: int
    violations: tuple[Violation, ...]
    latencies: tuple[float, ...]
    resume_slots: float | None  # None: not healed (a safety violation came first) or stalled


def run_schedule(seed: int, n: int) -> ScheduleResult:
    """The random schedule (seed, n): 6n-18n adversarial slots, stopping at the first
    safety violation; then a heal, and up to `resume_bound(n)` slots for finality to resume.
    Half the schedules are the twins attack of issue 8 at ordinary loss (f Byzantine, sides
    apart at every Byzantine slot); the others draw every knob at random, loss and
    partitions included."""
    rng = random.Random(f"schedule/{seed}/{n}")
    f = (n - 1) // 3
    if rng.random() < 0.5:
        profile, byzantine = "attack", f
        knobs = dict(max_block_loss=0.3, max_loss=0.1, max_delay=0, reorder=False, partitions=0.0,
                     split=1.0, cross=rng.choice((0.5, 1.0)), equivocate=1.0, withhold=0.0)
    else:
        profile, byzantine = "chaos", rng.randint(0, f)
        knobs = dict(max_block_loss=rng.choice((0.1, 0.2, 0.3, 0.45)), max_loss=rng.choice((0.0, 0.1, 0.2, 0.3, 0.6)),
                     max_delay=rng.choice((0, 0, STEPS_PER_SLOT // 4, STEPS_PER_SLOT, 3 * STEPS_PER_SLOT)),
                     reorder=rng.random() < 0.5, partitions=rng.choice((0.0, 0.2, 0.5)),
                     split=rng.choice((0.0, 0.5, 1.0)), cross=rng.choice((0.0, 0.5, 1.0)),
                     equivocate=rng.choice((0.5, 1.0)), withhold=rng.choice((0.0, 0.2, 0.5)))
    adversary = RandomSchedule(random.Random(rng.random()), **knobs)
    setup = f"{profile}: {byzantine} Byzantine, " + ", ".join(f"{key} {value}" for key, value in knobs.items())
    cluster = AdversaryCluster(n, members=SCHEDULE_MEMBERS, byzantine=byzantine, adversary=adversary, seed=seed)
    cluster.run_slots(rng.randint(6 * n, 18 * n), stop_on_violation=True)
    resume = None
    if not cluster.violations:
        cluster.heal()
        resume = cluster.run_until_resumed(resume_bound(n))
    return ScheduleResult(seed, n, setup, cluster.slot, tuple(cluster.violations), tuple(cluster.latencies), resume)


@dataclass
class SearchReport:
    schedules: list[ScheduleResult] = field(default_factory=list)

    @property
    def slots(self) -> int:
        return sum(result.slots for result in self.schedules)

    @property
    def failed(self) -> list[ScheduleResult]:
        return [result for result in self.schedules if result.violations]


def search(hours: float, *, n: int | None = None, seed: int = 0) -> SearchReport:
    """Random schedules with seeds `seed`, `seed + 1`, ... (n alternating 4 and 7 unless
    given) until `hours` of simulated time have run; at least one."""
    report = SearchReport()
    for i in itertools.count():
        if report.schedules and report.slots * SLOT_SECONDS >= hours * 3600:
            return report
        report.schedules.append(run_schedule(seed + i, n or (4, 7)[i % 2]))
