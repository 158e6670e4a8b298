"""The field simulator: N consensus node cores on a simulated LoRa field, in virtual time.

Each simulated node is the real stack in virtual time, nothing re-modelled: the
`NodeRuntime` that `blockiot node` runs (chain/runtime: consensus core, link layer,
transmit queue within the airtime budget) <-> `FloodRouter` (hil/sim/flooding.py:
Meshtastic managed flooding, hop limit; the part of the firmware a real node's board
runs) <-> the shared `Medium` (hil/sim/medium.py: log-distance path loss, airtime,
collisions with capture, half duplex, random loss). Every transmission, own or relayed,
first passes the node's `DutyCycleBudget` (radio/dutycycle.py). Clocks, crashes, partitions, late joins and a
Byzantine leader come from the scenario (hil/sim/scenarios.py); `SimMetrics`
(hil/sim/metrics.py) turns what happened into the figures `blockiot sim --json` prints.

Driven by `EventLoop` (hil/sim/eventloop.py); deterministic by seed.
"""
from __future__ import annotations

import hashlib
import math
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from blockiot.chain.consensus.events import PRIORITY_BLOCK, BlockProposed
from blockiot.chain.consensus.messages import BlockMsg, MsgType, encode_message
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.params import ANSWER_SHARE, ConsensusParams
from blockiot.chain.consensus.recovery import restore
from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.store import ChainStore
from blockiot.chain.runtime.runtime import NodeRuntime
from blockiot.chain.runtime.transmit import TransmitQueue
from blockiot.chain.wire import Reading, Sensor, compact_from_block, decode_compact
from blockiot.hil.sim.burstloss import GilbertElliott
from blockiot.hil.sim.eventloop import EventLoop
from blockiot.hil.sim.flooding import FloodRouter, MeshPacket, MeshPacketError, Role
from blockiot.hil.sim.medium import Field, LogDistance, Medium, sensitivity_dbm
from blockiot.hil.sim.metrics import SimMetrics
from blockiot.radio.airtime import MESHTASTIC_HEADER_LEN, MESHTASTIC_OVERHEAD, meshtastic_max_payload, preset, time_on_air
from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.link import Dropped, Link

# Meshtastic's Data protobuf around our payload, on top of the 16-byte header MeshPacket builds.
PROTOBUF_OVERHEAD = MESHTASTIC_OVERHEAD - MESHTASTIC_HEADER_LEN
LINK_MTU = meshtastic_max_payload()
# Field side per sqrt(node), and its bounds, when the config does not give one.
SPACING_M = 150.0
FIELD_MIN_M, FIELD_MAX_M = 400.0, 1200.0
FIELD_RANGES = 2.0  # and at most this many radio ranges, so that 3 hops cross it
PLACEMENT_TRIES = 50
# Which nodes relay floods: every node (Meshtastic CLIENT everywhere), or a backbone of
# devices that keeps everyone in range of two relays (the rest CLIENT_MUTE).
RELAY_CHOICES = ("backbone", "all")
RELAY_COVER = 2  # relays every node hears, at least, on the backbone


class SimConfigError(Exception):
    """A simulation that cannot be set up as asked."""

    user_facing = True


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. `slot_seconds` None: 20 x the airtime of a 150 B packet, rounded up
    to 5 s (30 s on LongFast); `field_m` None: a square of 150 m x sqrt(nodes), 400-1200 m,
    at most two radio ranges of the preset;
    `relays`: see RELAY_CHOICES."""

    nodes: int = 20
    validators: int = 4
    hours: float = 1.0
    preset: str = "LongFast"
    loss: float = 0.0
    seed: int = 1
    scenario: str = "baseline"
    slot_seconds: int | None = None
    tx_interval_s: float = 1800.0
    field_m: float | None = None
    hop_limit: int = 3
    region: str = "EU868"
    frequency_hz: float | None = 869.525e6
    tx_power_dbm: float = 20.0
    path_loss: LogDistance = LogDistance()
    capture_db: float = 6.0
    finality: str = "quorum"
    relays: str = "backbone"
    burst: tuple[float, float, float] | None = None  # Gilbert-Elliott per receiver: good s, bad s, loss when bad

    def __post_init__(self) -> None:
        if self.nodes < 1 or not 1 <= self.validators <= self.nodes:
            raise SimConfigError(f"need 1 <= validators <= nodes, got {self.validators} validators of {self.nodes} nodes")
        if not self.hours > 0:
            raise SimConfigError(f"hours must be positive, got {self.hours}")
        if not 0.0 <= self.loss < 1.0:
            raise SimConfigError(f"loss must be within [0, 1), got {self.loss}")
        if not self.tx_interval_s > 0:
            raise SimConfigError(f"tx interval must be positive, got {self.tx_interval_s}")
        if self.relays not in RELAY_CHOICES:
            raise SimConfigError(f"relays must be one of {', '.join(RELAY_CHOICES)}, got {self.relays!r}")
        if self.burst is not None and not (self.burst[0] > 0 and self.burst[1] > 0 and 0 <= self.burst[2] <= 1):
            raise SimConfigError(f"burst must be (good seconds > 0, bad seconds > 0, loss in [0, 1]), got {self.burst}")
        if self.slot_seconds is not None and not 1 <= self.slot_seconds <= 3600:
            raise SimConfigError(f"slot seconds must be 1..3600, got {self.slot_seconds}")

    @property
    def duration_s(self) -> float:
        return self.hours * 3600.0


@dataclass
class ClockModel:
    """A node's local clock: local = true * (1 + ppm / 1e6) + offset."""

    offset: float = 0.0
    ppm: float = 0.0
    time_source: bool = True

    def local(self, t: float) -> float:
        return t * (1.0 + self.ppm * 1e-6) + self.offset

    def true(self, local: float) -> float:
        return (local - self.offset) / (1.0 + self.ppm * 1e-6)


@dataclass
class SimNode:
    """One simulated device: identity, radio state, its clock and (while up) its runtime."""

    index: int
    identity: Identity
    position: tuple[float, float]
    validator: bool
    clock: ClockModel = field(default_factory=ClockModel)
    byzantine: bool = False
    runtime: NodeRuntime | None = None
    router: FloodRouter | None = None
    budget: DutyCycleBudget | None = None
    busy_until: float = 0.0
    ready_at: float = 0.0
    packet_id: int = 0
    nonce: int = 0  # the last nonce it signed, kept across reboots (its flash)
    up_since: float | None = None
    disk: ChainStore | None = None
    group: int = 0
    version: int = 0
    channel: GilbertElliott | None = None

    @property
    def radio_id(self) -> int:
        return self.index + 1

    @property
    def core(self) -> NodeCore | None:
        return None if self.runtime is None else self.runtime.core


class FieldSim:
    """Build the field from a config, let a scenario shape it, `run()` it, get the metrics."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.params_lora = preset(config.preset)
        self.rng = random.Random(config.seed)
        slot = config.slot_seconds or default_slot_seconds(config.preset)
        self.identities = [Identity.from_seed(_seed_bytes(config.seed, i)) for i in range(config.nodes)]
        members = tuple(
            Member(i, ident.public_key, "validator" if i < config.validators else "member", (), f"node-{i}")
            for i, ident in enumerate(self.identities)
        )
        self.genesis = Genesis("field-sim", 0, Params(slot_seconds=slot, region=config.region, preset=config.preset), members)
        airtime_frame = time_on_air(255, self.params_lora)
        budget = DutyCycleBudget(config.region, frequency_hz=config.frequency_hz)
        answer_bytes = budget.share_bytes(ANSWER_SHARE, slot, LINK_MTU, airtime_frame)  # a full frame's airtime
        self.consensus = ConsensusParams.from_genesis(
            self.genesis,
            answer_bytes_per_slot=answer_bytes,
            finality=config.finality,
            hop_latency_s=time_on_air(130, self.params_lora) + 0.5,
            request_timeout_s=slot / 2 + airtime_frame * 4,
        )
        self.loop = EventLoop()
        self.medium = Medium(
            self.params_lora,
            topology=Field(config.path_loss),
            loss=config.loss,
            seed=config.seed,
            capture_db=config.capture_db,
            overhead_bytes=PROTOBUF_OVERHEAD,
        )
        positions, self.relays = self._place()
        self.nodes = [
            SimNode(i, self.identities[i], positions[i], i < config.validators) for i in range(config.nodes)
        ]
        for node in self.nodes:
            self.medium.add_radio(node.radio_id, node.position, tx_power_dbm=config.tx_power_dbm)
            if config.burst is not None:
                good, bad, loss = config.burst
                node.channel = GilbertElliott(good, bad, loss, random.Random(f"burst:{config.seed}:{node.index}"))
        self.metrics = SimMetrics(self.genesis, self.consensus, config.duration_s)
        self.partitions: list[tuple[float, float]] = []
        self._packets: dict[bytes, MeshPacket] = {}
        self._kinds: dict[tuple[int, int], str] = {}
        self._medium_at = math.inf
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._late: set[int] = set()

    # --- placement ---------------------------------------------------------------------

    def _place(self) -> tuple[list[tuple[float, float]], set[int]]:
        """Uniform positions in the square field and the nodes that relay, redrawn until a
        flood from any node reaches every other within the hop limit (deterministic by seed)."""
        loss_budget = self.config.tx_power_dbm - sensitivity_dbm(self.params_lora.sf, self.params_lora.bw_hz)
        pl = self.config.path_loss
        radio_range = pl.d0_m * 10 ** ((loss_budget - pl.loss_d0_db) / (10 * pl.gamma))
        side = self.config.field_m or min(
            max(SPACING_M * math.sqrt(self.config.nodes), FIELD_MIN_M), FIELD_MAX_M, FIELD_RANGES * radio_range
        )
        for _ in range(PLACEMENT_TRIES):
            positions = [(self.rng.uniform(0, side), self.rng.uniform(0, side)) for _ in range(self.config.nodes)]
            count = len(positions)
            neighbours = [
                {j for j in range(count) if j != i and self.config.path_loss.loss_db(math.dist(positions[i], positions[j])) <= loss_budget}
                for i in range(count)
            ]
            relays = set(range(count)) if self.config.relays == "all" else _backbone(neighbours, self.config.validators, RELAY_COVER)
            if _floods_reach(neighbours, relays, self.config.hop_limit):
                return positions, relays
        raise SimConfigError(
            f"could not place {self.config.nodes} nodes in {side:.0f} m so that all reach each other "
            f"within {self.config.hop_limit + 1} hops; give a smaller field"
        )

    # --- scenario controls -------------------------------------------------------------

    def crash(self, index: int, at: float) -> None:
        self.loop.schedule(at, lambda: self._crash(self.nodes[index]))

    def restart(self, index: int, at: float) -> None:
        self.loop.schedule(at, lambda: self._boot(self.nodes[index], from_disk=True))

    def join_late(self, index: int, at: float) -> None:
        self._late.add(index)
        self.loop.schedule(at, lambda: self._boot(self.nodes[index], from_disk=False))

    def give_disk(self, index: int) -> None:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="blockiot-sim-")
        self.nodes[index].disk = ChainStore(Path(self._tmp.name) / f"node-{index}")

    def cut_off(self, indices: list[int], start: float, end: float) -> None:
        """From `start` to `end`, nothing passes between these nodes and the others (call
        again for more intervals: a flapping partition)."""
        for i in indices:
            self.nodes[i].group = 1
        self.partitions.append((start, end))

    # --- running -----------------------------------------------------------------------

    def run(self) -> dict:
        wall = time.perf_counter()
        try:
            for node in self.nodes:
                if node.index in self._late:
                    self.medium.set_alive(node.radio_id, False)
                else:
                    self._boot(node, from_disk=False)
            self.loop.run(self.config.duration_s)
            report = {"scenario": self.config.scenario, "seed": self.config.seed, "preset": self.config.preset}
            report.update(self.metrics.report(self.nodes, self.medium, time.perf_counter() - wall))
            return report
        finally:
            for node in self.nodes:
                if node.disk is not None:
                    node.disk.close()
            if self._tmp is not None:
                self._tmp.cleanup()

    def _boot(self, node: SimNode, *, from_disk: bool) -> None:
        t = self.loop.now
        ledger, finalized = (None, ())
        if from_disk and node.disk is not None:
            ledger, finalized = restore(self.genesis, node.disk)
        self.medium.set_alive(node.radio_id, True)
        rng = random.Random(f"{self.config.seed}:{node.index}:{t}")
        core = NodeCore(
            self.genesis,
            radio_id=node.radio_id,
            rng=rng,
            now=node.clock.local(t),
            identity=node.identity,
            params=self.consensus,
            ledger=ledger,
            finalized=finalized,
            time_source=node.clock.time_source,
            lock=node.disk.lock() if from_disk and node.disk is not None else -1,
        )
        frame_airtime = time_on_air(255, self.params_lora)
        link = Link(
            LINK_MTU,
            rng=rng,
            node_id=node.radio_id,
            repair=False,
            repair_delay=4 * frame_airtime,
            repair_interval=4 * frame_airtime,
            reassembly_timeout=max(30.0, 24 * frame_airtime),
        )
        if node.budget is None:
            node.budget = DutyCycleBudget(self.config.region, frequency_hz=self.config.frequency_hz)
        transmit = TransmitQueue(self._frame_airtime, node.budget, on_drop=lambda kind: self.metrics.on_budget_drop(node, kind))
        node.runtime = NodeRuntime(
            core, link, transmit, store=node.disk, record_evidence=not node.byzantine,
            on_event=lambda event, _local: self._on_event(node, event), last_nonce=node.nonce,
        )
        node.router = FloodRouter(
            node.radio_id,
            params=self.params_lora,
            rng=rng,
            hop_limit=self.config.hop_limit,
            role=Role.CLIENT if node.index in self.relays else Role.CLIENT_MUTE,
        )
        node.up_since = t
        self.metrics.on_boot(node, t)
        if node.disk is not None and finalized:
            self.metrics.on_restored(node, [block_id for _, block_id, _ in finalized])
        first_tx = t + rng.uniform(0, self.config.tx_interval_s)
        self.loop.schedule(first_tx, lambda runtime=node.runtime: self._send_reading(node, runtime))
        self._wake(node)

    def _crash(self, node: SimNode) -> None:
        if node.core is None:
            return
        self.metrics.on_crash(node, self.loop.now)
        self.medium.set_alive(node.radio_id, False)
        node.nonce = node.runtime.last_nonce
        node.runtime = node.router = None
        node.version += 1

    def _send_reading(self, node: SimNode, runtime: NodeRuntime) -> None:
        if node.runtime is not runtime:
            return  # that incarnation crashed
        t = self.loop.now
        self.metrics.on_tx_sent(runtime.submit(Reading(Sensor.MOISTURE, int(t) % 1000), node.clock.local(t)).tx_id, t)
        self.loop.schedule(t + self.config.tx_interval_s, lambda: self._send_reading(node, runtime))
        self._wake(node)

    # --- one node's turn ---------------------------------------------------------------

    def _wake(self, node: SimNode) -> None:
        """(Re)schedule the node for the earliest thing it has to do."""
        runtime = node.runtime
        if runtime is None:
            return
        times = [node.router.next_deadline()]
        deadline = runtime.next_deadline()
        if deadline is not None:
            times.append(node.clock.true(deadline))
        ready = runtime.transmit.ready_at()
        if ready is not None:
            times.append(max(node.clock.true(ready), node.ready_at, node.busy_until))
        at = min((x for x in times if x is not None), default=None)
        if at is None:
            return
        node.version += 1
        version = node.version
        self.loop.schedule(max(at, self.loop.now), lambda: self._service(node, version))

    def _service(self, node: SimNode, version: int) -> None:
        if node.version != version or node.runtime is None:
            return
        t = self.loop.now
        node.runtime.tick(node.clock.local(t))
        self._relay(node, t)
        self._transmit(node, t)
        self._wake(node)

    def _relay(self, node: SimNode, t: float) -> None:
        while True:
            busy_until = max(node.busy_until, self.medium.busy_until(node.radio_id, t))
            packet = node.router.pop_due(t, busy_until=busy_until)
            if packet is None:
                return
            raw = packet.to_bytes()
            airtime, local = self.medium.airtime(len(raw)), node.clock.local(t)
            if node.budget.check(airtime, local) > 0:
                self.metrics.on_budget_drop(node, "relay")
                continue
            node.budget.record(airtime, local)
            self._put_on_air(node, packet, raw, self._kinds.get((packet.origin, packet.packet_id), "other"), t)

    def _transmit(self, node: SimNode, t: float) -> None:
        """The node's next own frame, when its radio is free and the channel is clear."""
        if not len(node.runtime.transmit) or node.busy_until > t or node.ready_at > t:
            return
        busy_until = self.medium.busy_until(node.radio_id, t)
        if busy_until > t:
            # Channel activity: back off 1-8 slots and sense again, as long as it lasts.
            # Every retry before `busy_until` would find it busy, so draw them all now.
            ready = t
            while ready < busy_until:
                ready += self.rng.uniform(1, 8) * node.router.slot
            node.ready_at = ready
            return
        frame = node.runtime.next_frame(node.clock.local(t))
        if frame is None:
            return
        node.packet_id = node.packet_id % 0xFFFFFFFF + 1
        hop = self.config.hop_limit if frame.hop_limit is None else frame.hop_limit
        packet = node.router.originate(node.packet_id, frame.data, hop_limit=hop)
        self._kinds[(node.radio_id, node.packet_id)] = frame.kind
        self._put_on_air(node, packet, packet.to_bytes(), frame.kind, t)

    def _put_on_air(self, node: SimNode, packet: MeshPacket, raw: bytes, kind: str, t: float) -> None:
        end = self.medium.transmit(node.radio_id, raw, t)
        airtime = end - t
        node.busy_until = end
        self._packets[raw] = packet
        self.metrics.on_transmit(node, kind, len(raw) + PROTOBUF_OVERHEAD, airtime, t)
        if end < self._medium_at:
            self._medium_at = end
            self.loop.schedule(end, self._poll_medium)

    # --- the channel -------------------------------------------------------------------

    def _poll_medium(self) -> None:
        t = self.loop.now
        if t < self._medium_at:
            return
        touched = {}
        for delivery in self.medium.poll(t):
            node = self.nodes[delivery.receiver - 1]
            if node.core is None or self._blocked(node, self.nodes[delivery.sender - 1], t):
                continue
            self._receive(node, delivery.packet, delivery.snr, t)
            touched[node.index] = node
        for node in touched.values():
            self._wake(node)
        nxt = self.medium.next_deadline()
        self._medium_at = math.inf if nxt is None else nxt
        if nxt is not None:
            self.loop.schedule(nxt, self._poll_medium)

    def _blocked(self, receiver: SimNode, sender: SimNode, t: float) -> bool:
        if receiver.channel is not None and receiver.channel.drops(t):
            return True
        if receiver.group == sender.group:
            return False
        return any(start <= t < end for start, end in self.partitions)

    def _receive(self, node: SimNode, raw: bytes, snr: float, t: float) -> None:
        packet = self._packets.get(raw)
        if packet is None:
            try:
                packet = MeshPacket.from_bytes(raw)
            except MeshPacketError:
                return
        if not node.router.receive(packet, snr, t).deliver:
            return
        hops = max(packet.hop_start - packet.hop_limit, 0)  # what firmware reports
        node.runtime.receive(packet.payload, packet.origin, node.clock.local(t), hops=hops, snr=snr)

    # --- what a runtime reported ---------------------------------------------------------

    def _on_event(self, node: SimNode, event) -> None:
        t = self.loop.now
        if isinstance(event, Dropped):
            self.metrics.on_link_drop(node, event.reason)
            return
        self.metrics.on_event(node, event, t)
        if node.byzantine and isinstance(event, BlockProposed):
            self._equivocate(node, event, t)

    def _equivocate(self, node: SimNode, proposed: BlockProposed, t: float) -> None:
        """The Byzantine leader signs a second, different block for the same slot, and
        floods random bytes too."""
        runtime, local = node.runtime, node.clock.local(t)
        first = runtime.core.tree.get(proposed.id)
        extra = runtime.sign(Reading(Sensor.MOISTURE, 0))
        second = runtime.core.tree.build(node.identity, proposed.slot, first.parent, [*first.applied.block.txs, extra])
        self.metrics.on_extra_block(second, first.parent.id, t)
        compact = decode_compact(compact_from_block(second.applied.block, first.parent.id))
        runtime.send_message(encode_message(BlockMsg(compact)), hop_limit=None, priority=PRIORITY_BLOCK,
                             kind=MsgType.BLOCK.name, now=local)
        garbage = self.rng.randbytes(self.rng.randrange(1, 120))  # and noise, which must change nothing
        runtime.send_message(garbage, hop_limit=None, priority=PRIORITY_BLOCK, kind="garbage", now=local)

    def _frame_airtime(self, frame_len: int) -> float:
        """Airtime of one of our link frames as a mesh packet (header, Data protobuf)."""
        return self.medium.airtime(frame_len + MESHTASTIC_HEADER_LEN)


def default_slot_seconds(preset_name: str) -> int:
    """20 x the airtime of a 150 B packet, rounded up to whole 5 s (30 s on LongFast)."""
    airtime = time_on_air(150, preset(preset_name))
    return max(5, 5 * math.ceil(20 * airtime / 5))


def _seed_bytes(seed: int, index: int) -> bytes:
    return hashlib.blake2b(f"blockiot-sim:{seed}:{index}".encode(), digest_size=32).digest()


def _backbone(neighbours: list[set[int]], validators: int, cover: int) -> set[int]:
    """The relays: devices, not the validators (they spend their duty cycle on blocks and
    answers), chosen greedily: the device that brings the most nodes still in range of fewer
    than `cover` relays closer to it, among devices already in range of a relay when there is
    one, so that the backbone stays connected (a greedy connected `cover`-dominating set).
    With `cover` = 2 each node hears two relays, and the relay load, which the duty cycle
    caps, is shared."""
    count = len(neighbours)
    devices = set(range(validators, count)) or set(range(count))
    relays: set[int] = set()
    heard = [0] * count

    def short(v: int) -> bool:
        return v not in relays and heard[v] < min(cover, len(neighbours[v] & devices))

    while any(short(v) for v in range(count)):
        pool = {v for v in devices if heard[v] > 0} - relays or devices - relays
        gains = {c: sum(short(v) for v in neighbours[c] | {c}) for c in sorted(pool)}
        best = max(gains, key=gains.get)
        if gains[best] == 0:
            best = min(c for c in devices - relays if any(short(v) for v in neighbours[c] | {c}))
        relays.add(best)
        for v in neighbours[best]:
            heard[v] += 1
    return relays


def _floods_reach(neighbours: list[set[int]], relays: set[int], hop_limit: int) -> bool:
    """A flood from any node reaches every node: the origin sends, then up to `hop_limit`
    rounds of relays by the relay nodes that heard it."""
    everyone = len(neighbours)
    for origin in range(everyone):
        heard = {origin} | neighbours[origin]
        senders = heard & relays - {origin}
        for _ in range(hop_limit):
            fresh = set().union(*(neighbours[r] for r in senders)) - heard
            heard |= fresh
            senders = fresh & relays
        if len(heard) < everyone:
            return False
    return True

