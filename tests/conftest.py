"""Pure shared fixtures: fixed-seed identities, a small cluster genesis, signers that keep
their own nonces, a ledger factory and a ledger snapshot. No IO beyond what a test asks
for (tmp_path)."""
from __future__ import annotations

import copy

import pytest

from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.ledger import AppliedBlock, Ledger
from blockiot.chain.wire import Action, Command, Reading, Sensor, Tx, sign_tx

# Seeds of the test cluster's members, by registry index: 0x01..01, 0x02..02, ...
TEST_SEEDS = tuple(bytes([i + 1]) * 32 for i in range(4))
# (name, role, groups) by registry index: two validators, a probe and a valve.
TEST_MEMBERS = (
    ("val-a", "validator", ("core",)),
    ("val-b", "validator", ("core",)),
    ("probe-1", "member", ("field-a",)),
    ("valve-1", "member", ("field-a",)),
)
TEST_GENESIS_TIME = 1_764_000_000


@pytest.fixture
def identities() -> list[Identity]:
    return [Identity.from_seed(seed) for seed in TEST_SEEDS]


@pytest.fixture
def genesis(identities) -> Genesis:
    members = tuple(
        Member(i, identity.public_key, role, groups, name)
        for i, (identity, (name, role, groups)) in enumerate(zip(identities, TEST_MEMBERS))
    )
    return Genesis("test-cluster", TEST_GENESIS_TIME, Params(slot_seconds=30, epoch_slots=120), members)


@pytest.fixture
def make_ledger(genesis):
    """Factory: a fresh Ledger on the test genesis, optionally backed by a store."""

    def make(store=None) -> Ledger:
        return Ledger(genesis, store)

    return make


class Signers:
    """Signs txs as any test member, each member keeping its own nonce counter."""

    def __init__(self, genesis: Genesis, identities: list[Identity]):
        self.genesis = genesis
        self.identities = identities
        self.nonces = [0] * len(identities)

    def sign(self, index: int, body, nonce: int | None = None) -> Tx:
        if nonce is None:
            self.nonces[index] += 1
            nonce = self.nonces[index]
        return sign_tx(self.identities[index], self.genesis.chain_id, index, nonce, body)

    def leader(self, ledger: Ledger, slot: int) -> Identity:
        return self.identities[ledger.leader_for_slot(slot)]

    def build_blocks(self, ledger: Ledger, slots) -> list[AppliedBlock]:
        """Each slot's leader builds a block of two txs: a moisture reading of 250 + slot
        from probe-1 and a command from val-a to valve-1 to open for 60 * slot seconds."""
        applied = []
        for slot in slots:
            txs = [
                self.sign(2, Reading(Sensor.MOISTURE, 250 + slot)).raw,
                self.sign(0, Command(3, Action.OPEN, (60 * slot,))).raw,
            ]
            applied.append(ledger.build_block(self.leader(ledger, slot), slot, txs))
        return applied


@pytest.fixture
def signers(genesis, identities) -> Signers:
    return Signers(genesis, identities)


@pytest.fixture
def snapshot():
    """Everything a refused block must leave unchanged: head, state root, table contents."""

    def take(ledger: Ledger):
        return ledger.head, ledger.state.state_root(), copy.deepcopy(ledger.state.tables)

    return take
