"""Pure fixtures for consensus tests: a 4-validator cluster and an in-memory network of
node cores (every message reaches every other core at once, unless a test drops it)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import pytest

from blockiot.chain.consensus.events import Finalized, Rejected
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.params import ConsensusParams
from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.wire import Reading, Sensor, sign_tx

GENESIS_TIME = 1000
SLOT = 10
VALIDATORS = 4
MEMBERS = 6


@dataclass
class Cluster:
    genesis: Genesis
    identities: list[Identity]
    params: ConsensusParams
    nonces: list[int] = field(default_factory=lambda: [0] * MEMBERS)

    def core(self, index: int, now: float = GENESIS_TIME, **kwargs) -> NodeCore:
        kwargs.setdefault("params", self.params)
        return NodeCore(
            self.genesis, radio_id=index + 1, rng=random.Random(index), now=now, identity=self.identities[index], **kwargs
        )

    def reading(self, index: int, value: int = 1) -> bytes:
        self.nonces[index] += 1
        tx = sign_tx(self.identities[index], self.genesis.chain_id, index, self.nonces[index], Reading(Sensor.MOISTURE, value))
        return tx.raw

    def slot_time(self, slot: int) -> float:
        return self.params.slot_start(slot)


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster()


def make_cluster() -> Cluster:
    """4 validators (registry 0-3) and 2 members, 10 s slots, transactions included at once."""
    identities = [Identity.from_seed(bytes([0x40 + i]) * 32) for i in range(MEMBERS)]
    members = tuple(
        Member(i, ident.public_key, "validator" if i < VALIDATORS else "member", (), f"n{i}")
        for i, ident in enumerate(identities)
    )
    genesis = Genesis("consensus-test", GENESIS_TIME, Params(slot_seconds=SLOT), members)
    return Cluster(genesis, identities, ConsensusParams.from_genesis(genesis, tx_settle_s=0.0))


# Decides whether a message from core i reaches core j (default: always).
Deliver = Callable[[int, int, bytes, float], bool]


class Net:
    """Cores joined by a perfect broadcast medium, driven in steps of `step` seconds."""

    def __init__(self, cores: list[NodeCore | None], now: float, deliver: Deliver | None = None) -> None:
        self.cores = cores
        self.now = now
        self.deliver = deliver or (lambda i, j, payload, t: True)
        self.events: list[list] = [[] for _ in cores]
        self.persisted: list[list] = [[] for _ in cores]
        self.sent: list[tuple[int, bytes]] = []

    def apply(self, index: int, out) -> None:
        self.events[index].extend(out.events)
        self.persisted[index].extend(out.persist)
        for send in out.sends:
            self.sent.append((index, send.payload))
            for j, core in enumerate(self.cores):
                if j != index and core is not None and self.deliver(index, j, send.payload, self.now):
                    self.apply(j, core.receive(send.payload, self.now, origin=index + 1, hops=0))

    def run(self, until: float, step: float = 0.5) -> None:
        while self.now < until:
            self.now = round(self.now + step, 6)
            for i, core in enumerate(self.cores):
                if core is None:
                    continue
                deadline = core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    self.apply(i, core.tick(self.now))

    def submit(self, index: int, raw_tx: bytes) -> None:
        self.apply(index, self.cores[index].submit(raw_tx, self.now))

    def finalized(self, index: int) -> list[Finalized]:
        return [e for e in self.events[index] if isinstance(e, Finalized)]

    def rejected(self, index: int) -> list[Rejected]:
        return [e for e in self.events[index] if isinstance(e, Rejected)]


@pytest.fixture
def make_net():
    return Net
