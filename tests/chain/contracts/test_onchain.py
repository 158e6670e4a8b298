"""Rules on the chain: deployed by signed transactions, run by every node as blocks apply.

Three Ledger instances stand for three nodes: the first builds each block (as the slot's
leader), the others apply its raw bytes; after every block all three must agree on the
state root, the rules' state, the balances and the commands pending for devices.
"""
from __future__ import annotations

import random

import pytest
from conftest import EXAMPLE_NAMES, example_source

from blockiot.chain.contracts import compile_rule
from blockiot.chain.contracts.onchain import decode_contract_state, deploy_tx_bytes, pending_commands
from blockiot.chain.crypto import Identity
from blockiot.chain.errors import InvalidBlock
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.ledger import Ledger
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import (
    BLOCK_VERSION,
    MAX_TX_BYTES,
    PARENT_PREFIX_LEN,
    Action,
    BlockHeader,
    Command,
    ContractDeploy,
    Reading,
    Sensor,
    TxKind,
    decode_tx,
    encode_block,
    header_signing_bytes,
    sign_tx,
    tx_root,
)

VALIDATORS = (0, 9)
GROUPS = {"field-a": (1, 2), "microgrid": (4, 5, 6, 7), "main-lamps": (40, 41), "main-motion": (50, 51)}
N_MEMBERS = 56


@pytest.fixture(scope="module")
def cluster_keys():
    identities = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(N_MEMBERS)]
    members = tuple(
        Member(i, identity.public_key, "validator" if i in VALIDATORS else "member",
               tuple(g for g, m in GROUPS.items() if i in m), f"dev-{i}")
        for i, identity in enumerate(identities)
    )
    return Genesis("rules-cluster", 1_764_000_000, Params(slot_seconds=30, epoch_slots=120), members), identities


class Nodes:
    """Three ledgers of one cluster, and signers with their own nonces."""

    def __init__(self, genesis: Genesis, identities, stores=(None, None, None)):
        self.genesis = genesis
        self.identities = identities
        self.ledgers = [Ledger(genesis, store) for store in stores]
        self.nonces = [0] * len(identities)

    def tx(self, sender: int, body) -> bytes:
        self.nonces[sender] += 1
        return sign_tx(self.identities[sender], self.genesis.chain_id, sender, self.nonces[sender], body).raw

    def reading(self, device: int, sensor: Sensor, value: int) -> bytes:
        return self.tx(device, Reading(sensor, value))

    def deploy(self, name: str, deployer: int = 0) -> bytes:
        return self.tx(deployer, ContractDeploy(compile_rule(example_source(name), f"{name}.rule").bytecode))

    def block(self, slot: int, txs=()):
        leader = self.identities[self.ledgers[0].leader_for_slot(slot)]
        applied = self.ledgers[0].build_block(leader, slot, list(txs))
        for follower in self.ledgers[1:]:
            assert follower.apply_block(applied.block.raw).state_root == applied.state_root
        views = [(ledger.state.state_root(), pending_commands(ledger.state), ledger.state.tables["balance"],
                  ledger.state.tables["contract_state"]) for ledger in self.ledgers]
        assert views[0] == views[1] == views[2]
        return applied

    @property
    def state(self):
        return self.ledgers[0].state


@pytest.fixture
def nodes(cluster_keys):
    return Nodes(*cluster_keys)


def test_the_irrigation_deploy_fits_one_radio_frame_and_every_example_fits_a_tx(nodes, example):
    sizes = {name: len(nodes.deploy(name)) for name in EXAMPLE_NAMES}
    assert sizes["irrigation"] <= 200
    assert all(size <= MAX_TX_BYTES for size in sizes.values())
    assert deploy_tx_bytes(example("irrigation").bytecode, sender=0, nonce=5) == sizes["irrigation"]


def test_deploy_needs_a_validator_and_valid_bytecode(nodes):
    good = compile_rule(example_source("cold_chain"), "cold_chain.rule").bytecode
    by_member = nodes.tx(5, ContractDeploy(good))
    garbage = nodes.tx(0, ContractDeploy(b"\x01\x00\xff"))
    applied = nodes.block(1, [by_member, garbage])
    assert applied.block.txs == ()  # the leader left both out
    assert nodes.state.tables["contract"] == {}
    with pytest.raises(InvalidBlock, match="not a validator"):
        nodes.ledgers[1].apply_block(forge(nodes, 2, [by_member]))


def forge(nodes: Nodes, slot: int, txs) -> bytes:
    """A block built by a ledger that does not check what it includes: the raw txs as given."""
    ledger = nodes.ledgers[1]
    signing = header_signing_bytes(ledger.chain_id, BLOCK_VERSION, ledger.height + 1, slot, ledger.head.id,
                                   tx_root(txs), bytes(32))
    leader = nodes.identities[ledger.leader_for_slot(slot)]
    header = BlockHeader(BLOCK_VERSION, ledger.height + 1, slot, ledger.head.id[:PARENT_PREFIX_LEN], leader.sign(signing))
    return encode_block(header, txs)


def test_four_rules_on_three_nodes_agree_on_state_and_commands(nodes):
    nodes.block(1, [nodes.deploy(name) for name in EXAMPLE_NAMES])
    deployed = sorted(nodes.state.tables["contract"])
    assert deployed == [(0, 1), (0, 2), (0, 3), (0, 4)]  # ids: (deployer, nonce)

    nodes.block(2, [
        nodes.reading(12, Sensor.RAIN_FORECAST, 5),     # no rain expected
        nodes.reading(1, Sensor.MOISTURE, 255),         # field-a probe: 25.5 % is dry
        nodes.reading(4, Sensor.POWER, 5000),           # microgrid: 4 offers 500 W
        nodes.reading(20, Sensor.LIGHT, 10),            # dark street, at 00:00: quiet hours
        nodes.reading(30, Sensor.TEMPERATURE, 950),     # fridge 9.5 °C, first warm reading
    ])
    nodes.block(3, [nodes.reading(6, Sensor.POWER, -2000), nodes.reading(30, Sensor.TEMPERATURE, 960)])
    nodes.block(5, [nodes.reading(30, Sensor.TEMPERATURE, 990)])  # third warm reading in a row

    pending = pending_commands(nodes.state)
    assert pending[3][2:] == (Action.OPEN, (600,))
    assert pending[4][2:] == (Action.DISCHARGE, (200,)) and pending[6][2:] == (Action.CHARGE, (200,))
    assert pending[40][2:] == pending[41][2:] == (Action.DIM, (20,))
    assert pending[31][2:] == pending[32][2:] == (Action.NOTIFY, (1,))
    assert pending[31][:2] == ((0, 4), 5)  # issued by the cold-chain rule, in slot 5
    assert nodes.state.tables["balance"] == {(4,): (400,), (6,): (-400,)}
    irrigation_state = decode_contract_state(nodes.state.get("contract_state", (0, 1))[0])
    assert irrigation_state[(0, 0)] == 1  # opened once today


def test_a_device_report_clears_its_pending_command(nodes):
    nodes.block(1, [nodes.deploy("irrigation")])
    nodes.block(2, [nodes.reading(12, Sensor.RAIN_FORECAST, 0), nodes.reading(2, Sensor.MOISTURE, 100)])
    assert 3 in pending_commands(nodes.state)
    nodes.block(3, [nodes.tx(3, Command(3, Action.OPEN, (300,)))])  # not what the rule asked: stays pending
    assert 3 in pending_commands(nodes.state)
    nodes.block(4, [nodes.tx(3, Command(3, Action.OPEN, (600,)))])  # the valve reports it opened for 600 s
    assert 3 not in pending_commands(nodes.state)


def test_schedules_run_at_block_slots(nodes):
    nodes.block(1, [nodes.deploy("street_lights")])
    nodes.block(2, [nodes.reading(20, Sensor.LIGHT, 5)])     # dark, 00:00: quiet hours, 20 %
    assert pending_commands(nodes.state)[40][2:] == (Action.DIM, (20,))
    nodes.block(5 * 120 + 3, [])                             # 05:00, a block with no tx at all
    assert pending_commands(nodes.state)[40][1:] == (5 * 120 + 3, Action.DIM, (80,))


def test_a_hostile_rule_fails_alone_and_the_chain_goes_on(nodes):
    hostile = compile_rule("state.n = 0\nwith reading(moisture) as r:\n    state.n = 1\n    while True:\n        pass\n",
                           "loop.rule").bytecode
    nodes.block(1, [nodes.tx(0, ContractDeploy(hostile)), nodes.deploy("irrigation")])
    nodes.block(2, [nodes.reading(12, Sensor.RAIN_FORECAST, 0), nodes.reading(1, Sensor.MOISTURE, 100)])
    assert nodes.state.get("reading", (1, Sensor.MOISTURE)) == (100, 2)  # the reading itself applied
    assert nodes.state.get("contract_state", (0, 1)) is None             # the loop changed nothing
    assert 3 in pending_commands(nodes.state)                            # the other rule ran


def test_rules_and_their_state_survive_a_restart(cluster_keys, tmp_path):
    genesis, identities = cluster_keys
    stores = [ChainStore(tmp_path / f"node{i}") for i in range(3)]
    nodes = Nodes(genesis, identities, stores)
    nodes.block(1, [nodes.deploy("energy")])
    nodes.block(2, [nodes.reading(5, Sensor.POWER, 3000), nodes.reading(7, Sensor.POWER, -1000)])
    root = nodes.state.state_root()
    for store in stores:
        store.close()
    reopened = Ledger(genesis, ChainStore(tmp_path / "node2"))
    assert reopened.state.state_root() == root
    assert reopened.state.tables["balance"] == {(5,): (200,), (7,): (-200,)}
    reopened.state.begin()
    reopened.state.apply_tx(decode_tx(nodes.reading(7, Sensor.POWER, -500)), 3)
    assert reopened.state.tables["balance"] == {(5,): (300,), (7,): (-300,)}  # the reloaded rule runs on
    reopened.state.rollback()
    reopened.store.close()


def test_deploy_kind_is_registered_on_the_wire(nodes):
    raw = nodes.deploy("cold_chain")
    assert raw[0] & 0x1F == TxKind.CONTRACT_DEPLOY


def test_random_traffic_keeps_three_nodes_in_agreement(nodes):
    rng = random.Random(2024)
    nodes.block(1, [nodes.deploy(name) for name in EXAMPLE_NAMES])
    senders = {Sensor.MOISTURE: (1, 2, 8), Sensor.RAIN_FORECAST: (12,), Sensor.POWER: (4, 5, 6, 7),
               Sensor.LIGHT: (20,), Sensor.MOTION: (50, 51), Sensor.TEMPERATURE: (30, 33)}
    ranges = {Sensor.MOISTURE: (0, 600), Sensor.RAIN_FORECAST: (0, 100), Sensor.POWER: (-9000, 9000),
              Sensor.LIGHT: (0, 200), Sensor.MOTION: (0, 3), Sensor.TEMPERATURE: (0, 1500)}
    slot = 1
    for _ in range(120):
        slot += rng.choice((1, 1, 2, 7, 40))
        txs = []
        for _ in range(rng.randint(0, 4)):
            sensor = rng.choice(list(senders))
            txs.append(nodes.reading(rng.choice(senders[sensor]), sensor, rng.randint(*ranges[sensor])))
        nodes.block(slot, txs)  # asserts the three nodes agree
    assert len(pending_commands(nodes.state)) >= 5
    assert nodes.state.tables["balance"]
