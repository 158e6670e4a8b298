"""Consensus parameters (quorum arithmetic, slots), the slot clock, message encodings and
equivocation evidence."""
from __future__ import annotations

import pytest

from blockiot.chain.consensus.clock import SlotClock
from blockiot.chain.evidence import (
    InvalidEvidence,
    decode_evidence,
    encode_evidence,
    make_evidence,
    proof_of,
    verify_evidence,
)
from blockiot.chain.consensus.messages import (
    BlockMsg,
    Blocks,
    EvidenceMsg,
    GetBlocks,
    GetTxs,
    MsgType,
    Txs,
    TxMsg,
    decode_message,
    encode_message,
    message_type,
)
from blockiot.chain.consensus.params import ConsensusConfigError, ConsensusParams
from blockiot.chain.crypto import Identity
from blockiot.chain.errors import DecodeError
from blockiot.chain.ledger import Ledger
from blockiot.chain.wire import BLOCK_VERSION, BlockHeader, CompactBlock, decode_compact, decode_tx, encode_compact


@pytest.mark.parametrize(
    "n, f, q, k", [(1, 0, 1, 1), (3, 0, 3, 1), (4, 1, 3, 4), (5, 1, 4, 4), (7, 2, 5, 7), (10, 3, 7, 10), (16, 5, 11, 16)]
)
def test_quorum_arithmetic(n, f, q, k):
    params = ConsensusParams(0, 30, tuple(range(n)))
    assert (params.f, params.q, params.obft_k) == (f, q, k)
    assert 2 * params.q - params.n > params.f  # two quorums share an honest validator


def test_slots_and_round_robin_leaders():
    params = ConsensusParams(1000, 30, (4, 7, 9))
    assert params.slot_at(999.9) == -1
    assert params.slot_at(1000) == 0
    assert params.slot_at(1089.9) == 2
    assert params.slot_start(3) == 1090
    assert [params.leader(s) for s in range(6)] == [4, 7, 9, 4, 7, 9]


@pytest.mark.parametrize(
    "kwargs", [dict(validators=()), dict(slot_seconds=0), dict(finality="fast"), dict(drift_s=-1), dict(max_block_txs=0)]
)
def test_bad_parameters_are_refused(kwargs):
    base = dict(genesis_time=0, slot_seconds=30, validators=(0, 1))
    base.update(kwargs)
    with pytest.raises(ConsensusConfigError):
        ConsensusParams(**base)


def test_follower_clock_takes_the_median_offset():
    params = ConsensusParams(0, 30, (0, 1, 2, 3, 4), hop_latency_s=1.0)
    clock = SlotClock(params, time_source=False)
    assert not clock.synced and not clock.is_future(10**6, 0.0)
    # The node's clock is 100 s behind: a block of slot s, one hop of 1 s away, arrives at
    # its local time 30 s + 1 - 100.
    for leader, slot in enumerate(range(10, 14)):
        clock.observe(slot, leader, 30 * slot + 1 - 100, hops=0)
    clock.observe(14, 4, 30 * 14 + 1 - 100 + 500, hops=0)  # one liar, 500 s off
    assert clock.synced
    assert clock.offset == pytest.approx(100.0)
    assert clock.slot(30 * 20 - 100 + 1) == 20


def test_clock_with_time_source_ignores_blocks_and_checks_the_future():
    params = ConsensusParams(0, 30, (0,), drift_s=5)
    clock = SlotClock(params)
    clock.observe(3, 0, 1000.0, hops=0)
    assert clock.offset == 0.0
    assert clock.is_future(11, 324.0)  # slot 11 starts at 330, more than 5 s ahead
    assert not clock.is_future(11, 326.0)


def _compact(txs: int, height: int = 2**20, slot: int = 2**27) -> CompactBlock:
    header = BlockHeader(BLOCK_VERSION, height, slot, b"\x11" * 8, b"\x22" * 64)
    return decode_compact(encode_compact(header, [bytes([i]) * 6 for i in range(txs)]))


def test_every_message_round_trips(cluster):
    tx = decode_tx(cluster.reading(4, 287))
    messages = [
        TxMsg(tx),
        BlockMsg(_compact(3), ((1, tx.raw),)),
        GetTxs(7, b"r" * 8, (0, 2)),
        Txs(b"r" * 8, ((0, tx.raw), (2, tx.raw))),
        GetBlocks(0, 12, b"t" * 8),
        Blocks(b"t" * 8, True, b"frame"),
    ]
    for msg in messages:
        raw = encode_message(msg)
        assert message_type(raw) is MsgType(raw[0])
        assert decode_message(raw) == msg


def test_a_full_block_message_fits_one_frame():
    params = ConsensusParams(0, 30, (0,))
    worst = encode_message(BlockMsg(_compact(params.max_block_txs)))
    assert len(worst) <= params.frame_bytes


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00", b"\x63abc", b"\x01\x00", b"\x03\x01", b"\x04" + b"r" * 8 + b"\x01\x80\x04\x00",
     b"\x03\x00" + b"r" * 8 + b"\x01\x80\x04", b"\x02\x05abc\x00", b"\x06short", b"\x07\x01"],
)
def test_malformed_messages_raise_decode_error(raw):
    with pytest.raises(DecodeError):
        decode_message(raw)


def _equivocation(cluster):
    """Two blocks the leader of slot 1 signed for that slot, with their header proofs."""
    leader = cluster.identities[cluster.params.leader(1)]
    proofs = []
    for txs in ([], [cluster.reading(4)]):
        ledger = Ledger(cluster.genesis)
        applied = ledger.build_block(leader, 1, txs)
        proofs.append(proof_of(applied, cluster.genesis.chain_id))
    return make_evidence(cluster.genesis.chain_id, 1, *proofs)


def test_evidence_proves_an_equivocation(cluster):
    ev = _equivocation(cluster)
    assert decode_evidence(encode_evidence(ev)) == ev
    assert verify_evidence(cluster.genesis, ev, cluster.params.leader) == cluster.params.leader(1)
    assert decode_message(encode_message(EvidenceMsg(ev))) == EvidenceMsg(ev)


def test_forged_or_empty_evidence_is_refused(cluster):
    ev = _equivocation(cluster)
    other_slot = type(ev)(2, ev.first, ev.second)  # signatures were over slot 1
    with pytest.raises(InvalidEvidence):
        verify_evidence(cluster.genesis, other_slot, cluster.params.leader)
    same = type(ev)(1, ev.first, ev.first)
    with pytest.raises(InvalidEvidence):
        verify_evidence(cluster.genesis, same, cluster.params.leader)
    stranger = Identity.from_seed(b"\x77" * 32)
    forged = type(ev.first)(**{**ev.first.__dict__, "signature": stranger.sign(b"x")})
    with pytest.raises(InvalidEvidence):
        verify_evidence(cluster.genesis, make_evidence(cluster.genesis.chain_id, 1, forged, ev.second), cluster.params.leader)
