"""Equivocation evidence recorded on chain by an EVIDENCE transaction: verified against the
genesis alone, recorded once per (leader, slot), forgeries refused without a trace."""
from __future__ import annotations

import dataclasses

import pytest

from blockiot.chain.errors import InvalidTx
from blockiot.chain.evidence import encode_evidence, make_evidence, proof_of
from blockiot.chain.ledger import Ledger
from blockiot.chain.wire import MAX_TX_BYTES, EquivocationProof, Reading, Sensor, TxKind, decode_tx, sign_tx
from blockiot.tools.demo_cluster import DemoCluster


def _two_blocks_for_slot_one(cluster):
    """The slot-1 leader signs two different blocks on the same parent."""
    genesis = cluster.genesis
    leader = genesis.leader_for_slot(1)
    probe = next(d for d in cluster.devices if d.kind == "probe")
    a, b = Ledger(genesis), Ledger(genesis)
    reading = sign_tx(probe.identity, genesis.chain_id, probe.member.index, 1, Reading(Sensor.MOISTURE, 300))
    first = a.build_block(cluster.identity_of(leader), 1, [reading.raw])
    second = b.build_block(cluster.identity_of(leader), 1, [])
    ev = make_evidence(genesis.chain_id, 1, proof_of(first, genesis.chain_id), proof_of(second, genesis.chain_id))
    return a, leader, ev


def _reporter(cluster):
    return next(d for d in cluster.devices if d.kind == "weather")


def test_evidence_is_recorded_once_on_chain():
    cluster = DemoCluster(seed=5)
    ledger, leader, ev = _two_blocks_for_slot_one(cluster)
    reporter = _reporter(cluster)
    chain_id, r = cluster.genesis.chain_id, reporter.member.index
    tx = sign_tx(reporter.identity, chain_id, r, 1, EquivocationProof(encode_evidence(ev)))
    assert tx.kind == TxKind.EVIDENCE and MAX_TX_BYTES < len(tx.raw) <= 480
    assert decode_tx(tx.raw) == tx

    applied = ledger.build_block(cluster.identity_of(ledger.leader_for_slot(2)), 2, [tx.raw])
    assert applied.block.txs == (tx.raw,)
    assert ledger.state.tables["equivocation"] == {(leader, 1): (r,)}

    again = sign_tx(reporter.identity, chain_id, r, 2, EquivocationProof(encode_evidence(ev)))
    with pytest.raises(InvalidTx, match="already recorded"):
        ledger.state.apply_tx(decode_tx(again.raw), 3)


def test_forged_or_malformed_evidence_is_refused_and_changes_nothing():
    cluster = DemoCluster(seed=5)
    ledger, _leader, ev = _two_blocks_for_slot_one(cluster)
    reporter = _reporter(cluster)
    chain_id, r = cluster.genesis.chain_id, reporter.member.index
    forged = dataclasses.replace(ev, second=dataclasses.replace(ev.second, signature=bytes(64)))
    root = ledger.state.state_root()
    for nonce, blob in ((1, encode_evidence(forged)), (2, b"\x01garbage")):
        tx = sign_tx(reporter.identity, chain_id, r, nonce, EquivocationProof(blob))
        with pytest.raises(InvalidTx, match="evidence from sender"):
            ledger.state.apply_tx(decode_tx(tx.raw), 2)
    assert ledger.state.state_root() == root and not ledger.state.tables["equivocation"]
