"""`blockiot bench hostile`: what hostile radio traffic costs a node, measured on the real
`NodeCore` and `radio.link.Link` in simulated time (docs/PROTOCOL.md §11, issue 8 item 5).

For each hostile class, one hostile frame per second for an hour against one victim:

- get_blocks: GET_BLOCKS from spoofed neighbours (a new radio id each), named to the
  victim, from height 1 to each block of its 30-block chain in turn;
- get_txs: GET_TXS for a full block (23 DATA txs of 160 B), one transaction named each;
- link_repair: forged link repair requests for every fragment of a 4 KiB message the
  victim sent just before;
- link_fragments: fake link fragments, each from a new spoofed sender and exactly as
  long as the repair request it can draw (the attacker's best ratio);

and prints the bytes the victim puts on air per byte the attacker sent (`_amplification`,
over the hour; `_worst_frame`: the most one hostile frame drew), and the victim's
airtime for the hour as a share of its budget (`_budget_pct`: EU868 10 % at 869.525 MHz,
360 s per hour; LongFast, each link frame in one Meshtastic packet as the driver times it).
Bytes are link frames: what goes in a Meshtastic packet's payload.

The cores run with the parameters the field simulator gives them (hil/sim/fieldsim.py): 30 s
slots, answers paid from `DutyCycleBudget.share_bytes(ANSWER_SHARE, ...)`. The links are
built as `blockiot node` builds them (radio/port.py: defaults, the node's radio id).

- junk: one malformed byte sent to each slot's leader inside its slot, before it acted,
  for 300 s of 10 s slots (issue 8 measured 31 finalized blocks cut to 1 so): blocks
  finalized with and without it.
"""
from __future__ import annotations

import copy
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from blockiot.chain.consensus import node as node_module
from blockiot.chain.consensus.messages import GetBlocks, GetTxs, encode_message
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.params import ANSWER_SHARE, ConsensusParams
from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.wire import PARENT_PREFIX_LEN, Data, Reading, Sensor, sign_tx
from blockiot.radio.airtime import meshtastic_max_payload, meshtastic_packet_len, preset, time_on_air
from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.link import Link, Transmit
from blockiot.radio.port import port_link
from blockiot.radio.linkframe import (
    FRAGMENT_HEADER_LEN, MSG_ID_MODULO, SINGLE_HEADER_LEN, FragmentFrame, RepairRequest, decode, encode,
    repair_request_len,
)
from blockiot.tools.bench import add_benchmark, machine, print_figures

PRESET = "LongFast"
LORA = preset(PRESET)
MTU = meshtastic_max_payload()  # the Meshtastic driver's MTU: one link frame per packet
FRAME_AIRTIME_S = time_on_air(255, LORA)  # a full LoRa frame, as the field simulator counts it
HOSTILE_FRAMES = 3600  # one a second for an hour
SLOT_S = 30
VALIDATORS, MEMBERS = 4, 6
CHAIN_BLOCKS = 30
FULL_BLOCK_TXS = 23  # ConsensusParams.max_block_txs
VICTIM = 0  # registry index of the core attacked (a validator); radio id VICTIM + 1
JUNK, JUNK_SLOT_S, JUNK_SPAN_S = b"\xff", 10, 300
SPOOFED = 10_000  # radio ids the attacker claims: SPOOFED, SPOOFED + 1, ...


def register(bench_subparsers) -> None:
    add_benchmark(
        bench_subparsers, "hostile", help="airtime hostile frames make a node spend",
        description="Feed a node one hostile frame per second for a simulated hour per class (spoofed "
                    "GET_BLOCKS, GET_TXS for a full block, forged link repair requests, fake link fragments) "
                    "and print the bytes it puts on air per byte received and the share of its EU868 airtime "
                    "budget that takes; and the blocks a cluster finalizes in 300 s with and without one junk "
                    "byte sent to each slot's leader inside its slot.",
        run=run,
    )


def budget() -> DutyCycleBudget:
    return DutyCycleBudget("EU868", frequency_hz=869.525e6)


def airtime(frames) -> float:
    """Seconds on air of link frames, each in one Meshtastic packet (as the driver times it)."""
    return sum(time_on_air(meshtastic_packet_len(len(frame)), LORA) for frame in frames)


# --- an in-memory cluster ----------------------------------------------------------------


class Mesh:
    """Cores joined by a perfect broadcast medium, stepped every 0.5 s (the consensus tests'
    `Net`, trimmed): every message reaches every other core at once."""

    def __init__(self, slot_s: int) -> None:
        self.identities = [Identity.from_seed(bytes([0x60 + i]) * 32) for i in range(MEMBERS)]
        members = tuple(
            Member(i, ident.public_key, "validator" if i < VALIDATORS else "member", (), f"n{i}")
            for i, ident in enumerate(self.identities)
        )
        self.genesis = Genesis("bench-hostile", 0, Params(slot_seconds=slot_s, region="EU868", preset=PRESET), members)
        self.params = ConsensusParams.from_genesis(  # as hil/sim/fieldsim.py sets them
            self.genesis,
            answer_bytes_per_slot=budget().share_bytes(ANSWER_SHARE, slot_s, MTU, FRAME_AIRTIME_S),
            hop_latency_s=time_on_air(130, LORA) + 0.5,
            request_timeout_s=slot_s / 2 + FRAME_AIRTIME_S * 4,
        )
        self.cores = [
            NodeCore(self.genesis, radio_id=i + 1, rng=random.Random(i), now=0.0, identity=ident, params=self.params)
            for i, ident in enumerate(self.identities)
        ]
        self.nonces = [0] * MEMBERS
        self.now = 0.0

    def apply(self, index: int, out) -> None:
        for send in out.sends:
            for j, core in enumerate(self.cores):
                if j != index:
                    self.apply(j, core.receive(send.payload, self.now, origin=index + 1, hops=0))

    def run(self, until: float, step: float = 0.5) -> None:
        """Step to exactly `until`, ticking every core whose deadline has come."""
        while self.now < until:
            self.now = min(round(self.now + step, 6), until)
            for i, core in enumerate(self.cores):
                deadline = core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    self.apply(i, core.tick(self.now))

    def submit(self, sender: int, body) -> None:
        self.nonces[sender] += 1
        raw = sign_tx(self.identities[sender], self.genesis.chain_id, sender, self.nonces[sender], body).raw
        self.apply(sender, self.cores[sender].submit(raw, self.now))


def chain_holder() -> Mesh:
    """A cluster whose nodes hold a 30-block chain: a reading or two in most blocks, and
    23 DATA transactions of 160 B (a full block) in one of the last, still above the
    finalized block (GET_TXS is answered only for blocks in the tree)."""
    mesh = Mesh(SLOT_S)
    victim = mesh.cores[VICTIM]
    rng = random.Random(7)
    while victim.head.height < CHAIN_BLOCKS:
        if victim.head.height == CHAIN_BLOCKS - 2:
            for n in range(FULL_BLOCK_TXS):
                mesh.submit(VALIDATORS + n % 2, Data(rng.randbytes(160)))
        else:
            for sender in range(VALIDATORS, MEMBERS):
                mesh.submit(sender, Reading(Sensor.MOISTURE, rng.randrange(1000)))
        mesh.run(mesh.now + SLOT_S)
    return mesh


# --- the hostile classes -------------------------------------------------------------------


@dataclass
class Tally:
    """What the attacker put on air and what it made the victim put on air (link frames)."""

    hostile: int = 0
    answers: list[bytes] = field(default_factory=list)
    worst: float = 0.0  # most victim bytes one hostile frame drew, per byte of it

    def add(self, hostile_len: int, frames: list[bytes]) -> None:
        self.hostile += hostile_len
        self.answers += frames
        self.worst = max(self.worst, sum(map(len, frames)) / hostile_len)


class _Radio:
    """What `port_link` asks of a driver: the Meshtastic driver's MTU and airtime."""

    mtu = MTU

    @staticmethod
    def airtime(frame_len: int) -> float:
        return time_on_air(meshtastic_packet_len(frame_len), LORA)


def _link(radio_id: int, rng: random.Random) -> Link:
    """The victim's link layer, built as `port_link` builds it for `blockiot node`."""
    return port_link(_Radio(), budget(), radio_id=radio_id, rng=rng)


def _requests(mesh: Mesh, make_request) -> Tally:
    """A copy of the victim core asked `make_request(i)` once a second by spoofed neighbours;
    its answers cut into frames by a link as `blockiot node` has one."""
    victim = copy.deepcopy(mesh.cores[VICTIM])
    link = _link(victim.radio_id, random.Random(0))
    tally = Tally()
    for i in range(HOSTILE_FRAMES):
        now = mesh.now + i + 1
        request = encode_message(make_request(victim, i))
        out = victim.receive(request, now, origin=SPOOFED + i, hops=0)
        tally.add(SINGLE_HEADER_LEN + len(request), [frame for send in out.sends for frame in link.send(send.payload, now)])
    return tally


def get_blocks(mesh: Mesh) -> Tally:
    """GET_BLOCKS from height 1 to each block of the chain in turn (a new tip every request,
    so no request is a repeat the victim already answered)."""
    victim = mesh.cores[VICTIM]
    final = [victim.final.id_at(h)[:PARENT_PREFIX_LEN] for h in range(1, victim.finalized.height + 1)]
    tips = final + [node.prefix for node in victim.head.ancestors() if node is not victim.finalized][::-1]
    assert len(tips) == CHAIN_BLOCKS
    # The core packs each answer (~3 ms) before its budget says whether it goes; the same 30
    # answers are packed once here, which changes no byte sent and saves 10 s of CPU.
    pack_blocks = node_module.pack_blocks
    packed = {}

    def memoized(tip, raws, start, codec, **limits):
        key = (tip, tuple(raws), start, tuple(sorted(limits.items())))
        if key not in packed:
            packed[key] = pack_blocks(tip, raws, start, codec, **limits)
        return packed[key]

    node_module.pack_blocks = memoized
    try:
        return _requests(mesh, lambda core, i: GetBlocks(core.radio_id, 1, tips[i % len(tips)]))
    finally:
        node_module.pack_blocks = pack_blocks


def get_txs(mesh: Mesh) -> Tally:
    """GET_TXS for the full block, naming one of its transactions in turn: each draws one
    TXS of one transaction (242 B for a 160 B DATA tx: two link fragments), as naming all
    23 would, for a request of 12 B instead of 34 B."""
    victim = mesh.cores[VICTIM]
    (full,) = [n for n in victim.head.ancestors() if n.applied and len(n.applied.block.txs) == FULL_BLOCK_TXS]
    return _requests(mesh, lambda core, i: GetTxs(core.radio_id, full.ref, (i % FULL_BLOCK_TXS,)))


def link_repair() -> Tally:
    """Forged repair requests for every fragment of the 4 KiB message the victim just sent."""
    victim = _link(VICTIM + 1, random.Random(1))
    own = victim.send(random.Random(1).randbytes(4096), 0.0)
    forged = encode(RepairRequest(decode(own[0]).msg_id, VICTIM + 1, len(own), frozenset(range(len(own)))))
    tally = Tally()
    for i in range(HOSTILE_FRAMES):
        now = i + 1.0
        events = victim.receive(forged, SPOOFED + i, now) + victim.poll(now)
        tally.add(len(forged), [e.frame for e in events if isinstance(e, Transmit)])
    return tally


def link_fragments() -> Tally:
    """Fake fragments of messages of the most fragments a link takes, each from a new sender
    and exactly as long as the repair request it may draw: the repair requests the victim
    sends for them, timers run to the end."""
    victim = _link(VICTIM + 1, random.Random(2))
    rng = random.Random(3)
    count = victim.max_fragments
    size = repair_request_len(count)  # a shorter fake draws no request at all
    tally = Tally()
    requests: list[bytes] = []

    def poll_until(t: float) -> None:
        while (deadline := victim.next_deadline()) is not None and deadline <= t:
            requests.extend(e.frame for e in victim.poll(deadline) if isinstance(e, Transmit))

    for i in range(HOSTILE_FRAMES):
        now = i + 1.0
        poll_until(now)
        fake = encode(FragmentFrame(rng.randrange(MSG_ID_MODULO), rng.randrange(count), count,
                                    rng.randbytes(size - FRAGMENT_HEADER_LEN)))
        assert len(fake) == size
        requests.extend(e.frame for e in victim.receive(fake, SPOOFED + i, now) if isinstance(e, Transmit))
        tally.hostile += size
    poll_until(float("inf"))
    tally.answers = requests
    per_fake = Counter(decode(frame).target for frame in requests)  # each fake came from its own sender
    tally.worst = max(per_fake.values(), default=0) * repair_request_len(count) / size
    return tally


def finalized_with_junk(junk: bool) -> int:
    """Blocks every node has finalized after 300 s of 10 s slots, the slot's leader sent one
    junk byte 0.25 s into each slot (before its tick at 0.5 s) when `junk`."""
    mesh = Mesh(JUNK_SLOT_S)
    for slot in range(1, JUNK_SPAN_S // JUNK_SLOT_S):
        mesh.run(mesh.params.slot_start(slot))
        mesh.now += 0.25
        if junk:
            leader = mesh.params.leader(slot)
            mesh.apply(leader, mesh.cores[leader].receive(JUNK, mesh.now, origin=SPOOFED, hops=0))
    mesh.run(JUNK_SPAN_S)
    return min(core.finalized.height for core in mesh.cores)


# --- figures -------------------------------------------------------------------------------


def _figures(name: str, tally: Tally, allowance_s: float) -> dict:
    out = sum(map(len, tally.answers))
    return {
        f"{name}_amplification": round(out / tally.hostile, 3),
        f"{name}_worst_frame": round(tally.worst, 2),
        f"{name}_budget_pct": round(100 * airtime(tally.answers) / allowance_s, 1),
        f"{name}_frames_out": len(tally.answers),
    }


def measure() -> dict:
    t0 = time.process_time()
    allowance_s = budget().allowance_s
    mesh = chain_holder()
    figures = {
        "preset": PRESET,
        "slot_s": SLOT_S,
        "budget_s_per_hour": allowance_s,
        "answer_bytes_per_slot": mesh.params.answer_bytes,
        "hostile_frames": HOSTILE_FRAMES,
    }
    figures.update(_figures("get_blocks", get_blocks(mesh), allowance_s))
    figures.update(_figures("get_txs", get_txs(mesh), allowance_s))
    figures.update(_figures("link_repair", link_repair(), allowance_s))
    figures.update(_figures("link_fragments", link_fragments(), allowance_s))
    figures["junk_slot_s"] = JUNK_SLOT_S
    figures["junk_finalized_clean"] = finalized_with_junk(False)
    figures["junk_finalized_with_junk"] = finalized_with_junk(True)
    figures["cpu_s"] = round(time.process_time() - t0, 1)
    figures["machine"] = machine()
    return figures


def run(args) -> int:
    return print_figures(measure(), args.json)
