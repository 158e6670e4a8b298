"""Helpers for the node runtime tests: runtimes of the test cluster (tests/conftest.py:
val-a and val-b validate, probe-1 and valve-1 are devices), a core whose timer hands out
outputs a test scripted, a receiving link that turns queued frames back into messages, a
test chain that builds the blocks a runtime is told are final, a fake clock and a
scripted radio driver. Nothing here sleeps: time passes only when a test (or the node's
own wait) advances the fake clock."""
from __future__ import annotations

import math
import random
import threading
from collections import deque
from typing import Callable

from blockiot.chain.consensus.messages import TxMsg, decode_message
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.params import ConsensusParams
from blockiot.chain.ledger import AppliedBlock, Ledger
from blockiot.chain.runtime.runtime import NodeRuntime
from blockiot.chain.runtime.transmit import Frame, TransmitQueue
from blockiot.chain.wire import Tx
from blockiot.radio.drivers.base import Received
from blockiot.radio.errors import RadioUnavailable
from blockiot.radio.link import Delivered, Link

LINK_MTU = 200
GENESIS_TIME = 1_764_000_000  # tests/conftest.py TEST_GENESIS_TIME
T0 = GENESIS_TIME + 1000.0  # some way into the chain: slot 33 of 30 s
VAL_A, VAL_B, PROBE, VALVE = range(4)
# The runtime loop calls the clock a few times per turn; this many calls with no time
# passing can only be a loop that spins.
SPIN_LIMIT = 20_000


class Spinning(AssertionError):
    """The code under test called the clock again and again while no time passed."""


def airtime(frame_len: int) -> float:
    """A made-up radio: 10 ms per byte."""
    return 0.01 * frame_len


def make_core(genesis, identity, *, now: float = T0, radio_id: int | None = None, **kwargs) -> NodeCore:
    member = genesis.index_of(identity.public_key) if identity is not None else None
    kwargs.setdefault("params", ConsensusParams.from_genesis(genesis))
    return NodeCore(genesis, radio_id=radio_id if radio_id is not None else (member or 0) + 1,
                    rng=random.Random(7), now=now, identity=identity, **kwargs)


def make_runtime(genesis, identity, *, now: float = T0, scripted: bool = True, budget=None,
                 max_frames: int = 64, on_drop=None, core_kwargs: dict | None = None, **kwargs) -> NodeRuntime:
    """A runtime of `identity` on the test cluster: a `ScriptedCore` (or the real core), a
    link of `LINK_MTU`, a transmit queue paid from `budget` (None: no airtime rule)."""
    core = make_core(genesis, identity, now=now, **(core_kwargs or {}))
    if scripted:
        core = ScriptedCore(core)
    link = Link(LINK_MTU, rng=random.Random(3), radio_id=core.radio_id)
    queue = TransmitQueue(airtime, budget, max_frames=max_frames, on_drop=on_drop)
    return NodeRuntime(core, link, queue, **kwargs)


class ScriptedCore:
    """A real `NodeCore` whose `tick` (and `submit`) first hand out the outputs a test
    queued (`script`, `script_submit`), and which records what `receive` was given.
    Everything else is the real core's."""

    def __init__(self, real: NodeCore) -> None:
        self.real = real
        self.scripted: deque = deque()
        self.scripted_submits: deque = deque()
        self.received: list[tuple[bytes, float, int, int]] = []
        self.ticks: list[float] = []
        self.deadline: float | None = None  # a test's own deadline, overriding the real one

    def __getattr__(self, name):
        return getattr(self.real, name)

    def script(self, out) -> None:
        self.scripted.append(out)

    def script_submit(self, out) -> None:
        self.scripted_submits.append(out)

    def submit(self, raw_tx: bytes, now: float):
        if self.scripted_submits:
            return self.scripted_submits.popleft()
        return self.real.submit(raw_tx, now)

    def next_deadline(self) -> float | None:
        if self.scripted:
            return -math.inf
        if self.deadline is not None:
            return self.deadline
        return self.real.next_deadline()

    def tick(self, now: float):
        self.ticks.append(now)
        if self.scripted:
            return self.scripted.popleft()
        return self.real.tick(now)

    def receive(self, payload: bytes, now: float, *, origin: int, hops: int):
        self.received.append((payload, now, origin, hops))
        return self.real.receive(payload, now, origin=origin, hops=hops)


def drain(runtime: NodeRuntime, now: float) -> list[Frame]:
    """Every frame the runtime lets out at `now`."""
    frames = []
    while (frame := runtime.next_frame(now)) is not None:
        frames.append(frame)
    return frames


def decode_frames(frames, sender: int = 99) -> list:
    """The consensus messages that link frames (`Frame`s or bytes) carry, in order."""
    link = Link(LINK_MTU, rng=random.Random(0))
    messages = []
    for frame in frames:
        data = frame.data if isinstance(frame, Frame) else frame
        for event in link.receive(data, sender, 0.0):
            if isinstance(event, Delivered):
                messages.append(decode_message(event.payload))
    return messages


def txs_in(frames) -> list[Tx]:
    return [m.tx for m in decode_frames(frames) if isinstance(m, TxMsg)]


def frames_of(payload: bytes, sender_link: Link | None = None, now: float = T0) -> list[bytes]:
    """The link frames another node would put on air for `payload`."""
    link = sender_link if sender_link is not None else Link(LINK_MTU, rng=random.Random(11))
    return link.send(payload, now)


class TestChain:
    """Builds the finalized blocks a runtime is told about: each block in the next slot,
    signed by its leader, holding exactly the transactions given (a tx the ledger would
    leave out fails the test)."""

    __test__ = False  # not a test class

    def __init__(self, genesis, identities, first_slot: int = 1) -> None:
        self.ledger = Ledger(genesis)
        self.identities = identities
        self.slot = first_slot - 1

    def block(self, *raw_txs: bytes) -> AppliedBlock:
        self.slot += 1
        leader = self.identities[self.ledger.leader_for_slot(self.slot)]
        applied = self.ledger.build_block(leader, self.slot, list(raw_txs))
        assert list(applied.block.txs) == list(raw_txs), "the test chain left out a transaction"
        return applied


class FakeClock:
    """Time that passes only through `advance`; actions scheduled with `at` run when the
    clock passes their time (in the thread that advances it)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self._actions: list[tuple[float, int, Callable[[], None]]] = []
        self._calls = 0

    def __call__(self) -> float:
        self._calls += 1
        if self._calls > SPIN_LIMIT:
            raise Spinning(f"the clock was read {SPIN_LIMIT} times at {self.now} with no time passing")
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._actions.append((when, len(self._actions), action))
        self._actions.sort()

    def advance(self, seconds: float) -> None:
        target = self.now + max(seconds, 0.0)
        while self._actions and self._actions[0][0] <= target:
            when, _, action = self._actions.pop(0)
            self.now = max(self.now, when)
            action()
        if target > self.now:
            self._calls = 0
        self.now = max(self.now, target)


class FakeStop(threading.Event):
    """A stop event whose `wait` lets fake time pass instead of real time."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if not self.is_set():
            self.waits.append(timeout)
            self.clock.advance(timeout or 0.0)
        return self.is_set()


class ScriptedDriver:
    """A radio driver on the fake clock: `receive` hands out what is in `inbox` or lets
    its timeout pass; `send` records frames; `open` records its time. Each raises
    `RadioUnavailable` while its `*_failures` count lasts."""

    mtu = LINK_MTU

    def __init__(self, clock: FakeClock, node_id: int = 0x1001, *, air: "MemoryAir | None" = None) -> None:
        self.clock = clock
        self.node_id = node_id
        self.name = f"fake:{node_id}"
        self.inbox: deque[Received] = deque()
        self.sent: list[tuple[float, bytes, int | None]] = []
        self.opens: list[float] = []
        self.receives = 0
        self.send_failures = 0
        self.open_failures = 0
        self.receive_failures = 0
        self.closed = False
        self.air = air
        if air is not None:
            air.drivers.append(self)

    def airtime(self, frame_len: int) -> float:
        return airtime(frame_len)

    def open(self) -> None:
        self.opens.append(self.clock.now)
        if self.open_failures:
            self.open_failures -= 1
            raise RadioUnavailable("fake radio still unplugged")

    def send(self, frame: bytes, *, hop_limit: int | None = None) -> None:
        if self.send_failures:
            self.send_failures -= 1
            raise RadioUnavailable("fake radio unplugged")
        self.sent.append((self.clock.now, frame, hop_limit))
        if self.air is not None:
            self.air.carry(self, frame)

    def receive(self, timeout: float) -> Received | None:
        self.receives += 1
        if self.receive_failures:
            self.receive_failures -= 1
            raise RadioUnavailable("fake radio gone while listening")
        if self.inbox:
            return self.inbox.popleft()
        self.clock.advance(timeout)
        return None

    def close(self) -> None:
        self.closed = True


class MemoryAir:
    """Every frame one driver sends lands in every other driver's inbox at once, heard
    directly with a fixed signal."""

    def __init__(self, rssi: float = -91.0, snr: float = 7.25) -> None:
        self.drivers: list[ScriptedDriver] = []
        self.rssi, self.snr = rssi, snr

    def carry(self, sender: ScriptedDriver, frame: bytes) -> None:
        for driver in self.drivers:
            if driver is not sender:
                driver.inbox.append(Received(frame, sender.node_id, self.rssi, self.snr, 0))
