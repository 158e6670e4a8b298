"""NodeCore on an in-memory network: slots and finality, compact blocks and missing
transactions, catch-up, equivocation evidence, refused blocks, restart from a store, and
malformed input that must change nothing (invariant 4)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockiot.chain.consensus.events import BlockAccepted, BlockProposed, Equivocation, Finalized
from blockiot.chain.consensus.messages import BlockMsg, GetBlocks, MsgType, TxMsg, decode_message, encode_message, message_type
from blockiot.chain.consensus.params import ConsensusParams
from blockiot.chain.consensus.recovery import restore
from blockiot.chain.ledger import Ledger
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import (
    BLOCK_VERSION,
    PARENT_PREFIX_LEN,
    BlockHeader,
    compact_from_block,
    decode_block,
    decode_compact,
    decode_tx,
    encode_block,
    encode_compact,
    header_signing_bytes,
    tx_root,
)

from conftest import GENESIS_TIME, MEMBERS, SLOT, Net, make_cluster


def test_validators_take_turns_and_everyone_finalizes_the_same_chain(cluster, make_net):
    net = make_net([cluster.core(i) for i in range(MEMBERS)], GENESIS_TIME)
    net.submit(4, cluster.reading(4))
    net.run(GENESIS_TIME + 20 * SLOT)
    proposed = [e for events in net.events for e in events if isinstance(e, BlockProposed)]
    assert sorted(e.slot for e in proposed) == list(range(2, 20))  # from boot slot + 2 on
    assert {cluster.params.leader(e.slot) for e in proposed} == {0, 1, 2, 3}
    chains = [[f.id for f in net.finalized(i)] for i in range(MEMBERS)]
    assert all(c == chains[0] for c in chains) and len(chains[0]) == 13  # slots 2..14: final 2q-1 = 5 slots later
    # Final once q = 3 blocks that saw it justified follow: 2q - 1 = 5 slots after its own.
    lags = {f.at - cluster.slot_time(f.slot) for f in net.finalized(5)}
    assert all(5 * SLOT <= lag < 6 * SLOT for lag in lags)
    assert [a.id for a in net.persisted[5]] == chains[5]
    assert sum(len(applied.block.txs) for applied in net.persisted[5]) == 1  # the reading made it in


def test_a_receiver_missing_transactions_asks_a_neighbour_for_exactly_those(cluster, make_net):
    deaf = 5
    drop_tx = lambda i, j, payload, t: not (j == deaf and message_type(payload) is MsgType.TX)
    net = make_net([cluster.core(i) for i in range(MEMBERS)], GENESIS_TIME, drop_tx)
    net.run(GENESIS_TIME + 2 * SLOT)
    for value in range(6):
        net.submit(4, cluster.reading(4, value))
    net.run(GENESIS_TIME + 10 * SLOT)
    asked = [decode_message(p) for i, p in net.sent if i == deaf and message_type(p) is MsgType.GET_TXS]
    assert asked and all(0 < len(m.indices) < 6 for m in asked)  # some came prefilled in the block
    assert any(message_type(p) is MsgType.TXS for _, p in net.sent)
    assert sum(len(applied.block.txs) for applied in net.persisted[deaf]) == 6
    assert [f.id for f in net.finalized(deaf)] == [f.id for f in net.finalized(0)]


def test_a_late_node_catches_up_from_a_neighbour(cluster, make_net):
    cores = [cluster.core(i) for i in range(MEMBERS - 1)] + [None]
    net = make_net(cores, GENESIS_TIME)
    for value in range(3):
        net.submit(4, cluster.reading(4, value))
    net.run(GENESIS_TIME + 30 * SLOT)
    net.cores[5] = cluster.core(5, now=net.now)
    net.run(GENESIS_TIME + 34 * SLOT)
    assert any(message_type(p) is MsgType.GET_BLOCKS for i, p in net.sent if i == 5)
    late = [f.id for f in net.finalized(5)]
    early = [f.id for f in net.finalized(0)]
    assert len(late) >= 26 and late == early[: len(late)]
    assert sum(len(applied.block.txs) for applied in net.persisted[5]) == 3


def test_an_equivocating_leader_is_reported_and_finality_stays_single(cluster, make_net):
    net = make_net([cluster.core(i) for i in range(MEMBERS)], GENESIS_TIME)
    byzantine = 3
    original = net.apply

    def apply(index, out):
        original(index, out)
        for event in out.events:
            if index == byzantine and isinstance(event, BlockProposed):
                core = net.cores[byzantine]
                first = core.tree.get(event.id)
                txs = [cluster.reading(4, 99)]
                net.submit(4, txs[0])
                second = core.tree.build(cluster.identities[byzantine], event.slot, first.parent, txs)
                msg = BlockMsg(decode_compact(compact_from_block(second.applied.block, first.parent.id)))
                original(byzantine, type(out)(sends=[type(out.sends[0])(encode_message(msg), MsgType.BLOCK, None, 0)]))

    net.apply = apply
    net.run(GENESIS_TIME + 20 * SLOT)
    reported = {(e.leader, e.slot) for i in range(MEMBERS) for e in net.events[i] if isinstance(e, Equivocation)}
    assert reported and {leader for leader, _ in reported} == {byzantine}
    assert any(message_type(p) is MsgType.EVIDENCE for _, p in net.sent)
    honest = [[f.id for f in net.finalized(i)] for i in range(MEMBERS) if i != byzantine]
    shortest = min(map(len, honest))
    assert shortest > 5 and all(c[:shortest] == honest[0][:shortest] for c in honest)


def _forge(cluster, signer, slot, parent_id=None, height=1):
    """A block for `slot` signed by any validator, on the genesis by default."""
    ledger = Ledger(cluster.genesis)
    parent = parent_id or ledger.head.id
    signing = header_signing_bytes(
        cluster.genesis.chain_id, BLOCK_VERSION, height, slot, parent, tx_root([]), ledger.state.state_root()
    )
    header = BlockHeader(BLOCK_VERSION, height, slot, parent[:PARENT_PREFIX_LEN], cluster.identities[signer].sign(signing))
    block = decode_block(encode_block(header, []))
    return encode_message(BlockMsg(decode_compact(compact_from_block(block, parent))))


def test_blocks_from_the_wrong_leader_or_the_future_are_refused(cluster):
    core = cluster.core(5, now=GENESIS_TIME + 3 * SLOT)
    wrong_leader = _forge(cluster, signer=cluster.params.leader(3) + 1, slot=3)
    out = core.receive(wrong_leader, GENESIS_TIME + 3 * SLOT, origin=1, hops=0)
    assert [(e.what, e.reason) for e in out.events] == [("block", "bad-block")]
    assert "leader" in out.events[0].detail
    future = _forge(cluster, signer=cluster.params.leader(50), slot=50)
    out = core.receive(future, GENESIS_TIME + 3 * SLOT, origin=1, hops=0)
    assert [e.reason for e in out.events] == ["future-slot"]
    assert core.head is core.finalized and core.head.height == 0


def test_a_restarted_validator_keeps_its_finalized_blocks_and_never_signs_its_boot_slot(cluster, make_net, tmp_path):
    store = ChainStore(tmp_path / "v0")
    net = make_net([cluster.core(i) for i in range(MEMBERS)], GENESIS_TIME)
    original = net.apply

    parents_j = []  # J of the parent of each block validator 0 signs, when it signs it

    def keep(index, out):  # the adapter's order: the lock, then finalized blocks, then sends
        if index == 0 and out.lock is not None:
            store.set_lock(out.lock)
        for e in out.events:
            if index == 0 and isinstance(e, BlockProposed):
                parents_j.append(net.cores[0].tree.get(e.parent).vote.just)
        original(index, out)

    net.apply = keep
    net.run(GENESIS_TIME + 12 * SLOT + 1)  # just after validator 0 signed slot 12
    for applied in net.persisted[0]:
        store.append(applied)
    before = [f.id for f in net.finalized(0)]
    lock = net.cores[0]._lock
    assert lock > net.cores[0].finalized.slot  # its last block saw a justified block not yet final
    store.close()
    store = ChainStore(tmp_path / "v0")
    ledger, finalized = restore(cluster.genesis, store)
    assert [block_id for _, block_id, _ in finalized] == before and store.lock() == lock
    net.cores[0] = cluster.core(0, now=net.now, ledger=ledger, finalized=finalized, lock=store.lock())
    net.events[0].clear()
    parents_j.clear()
    boot_slot = cluster.params.slot_at(net.now)
    net.run(GENESIS_TIME + 24 * SLOT)
    assert net.cores[0].finalized.height > len(before)
    proposed = [e for e in net.events[0] if isinstance(e, BlockProposed)]
    assert proposed and min(e.slot for e in proposed) > boot_slot + 1
    assert parents_j and min(parents_j) >= lock  # H2 holds across the restart
    assert any(isinstance(e, BlockAccepted) and e.slot < proposed[0].slot for e in net.events[0])
    store.close()


def test_obft_depth_rule_finalizes_3f_plus_1_slots_late(cluster, make_net):
    params = ConsensusParams.from_genesis(cluster.genesis, finality="obft", tx_settle_s=0.0)
    net = make_net([cluster.core(i, params=params) for i in range(MEMBERS)], GENESIS_TIME)
    net.run(GENESIS_TIME + 12 * SLOT)
    lags = {round(f.at - cluster.slot_time(f.slot)) for f in net.finalized(5)}
    assert lags == {params.obft_k * SLOT}


def _state(core):
    return (core.head.id, core.finalized.id, core.ledger.state.state_root(), len(core.mempool), len(core.tree))


@pytest.fixture(scope="module")
def member_core():
    """A member's core 8 slots into a 4-validator cluster, and valid messages of every kind."""
    cluster = make_cluster()
    net = Net([cluster.core(i) for i in range(MEMBERS)], GENESIS_TIME)
    net.submit(4, cluster.reading(4))
    net.run(GENESIS_TIME + 8 * SLOT)
    return net.cores[5], [payload for _, payload in net.sent][:40]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_malformed_input_never_changes_state(member_core, data):
    core, valid = member_core
    if data.draw(st.booleans()):
        payload = data.draw(st.binary(max_size=260))
    else:
        flipped = bytearray(data.draw(st.sampled_from(valid)))
        position = data.draw(st.integers(0, len(flipped) - 1))
        flipped[position] ^= data.draw(st.integers(1, 255))
        payload = bytes(flipped)
    before = _state(core)
    out = core.receive(payload, GENESIS_TIME + 8 * SLOT, origin=9, hops=0)
    assert _state(core) == before
    assert not out.persist and not any(isinstance(e, (BlockAccepted, Finalized)) for e in out.events)


def test_a_junk_frame_early_in_its_slot_does_not_make_a_leader_miss_it(cluster):
    core = cluster.core(2)  # leads the slots 2, 6, 10, ...
    t = cluster.slot_time(6) + 0.1
    out = core.receive(b"\xff", t, origin=9, hops=0)  # inside its slot, before it acted
    assert [e.reason for e in out.events] == ["malformed"]
    assert core.next_deadline() <= t  # the turn is still due now, not a round later
    out = core.tick(t)
    assert [e.slot for e in out.events if isinstance(e, BlockProposed)] == [6]
    later = core.tick(core.next_deadline())  # the block's second flood (its round had gaps), no second block
    assert [s.payload for s in later.sends] == [s.payload for s in out.sends if s.kind is MsgType.BLOCK]
    assert not any(isinstance(e, BlockProposed) for e in later.events)
    assert core.next_deadline() >= cluster.slot_time(10)


def test_a_storm_of_forged_blocks_from_spoofed_neighbours_leaves_every_table_bounded(cluster):
    core = cluster.core(4)
    params = cluster.params
    t = cluster.slot_time(3)
    for origin in range(100, 2100):
        unknown_parent = BlockHeader(1, 2, 2, origin.to_bytes(8, "big"), bytes(64))
        known_parent = BlockHeader(1, 1, 2, cluster.genesis.chain_id[:8], origin.to_bytes(64, "big"))
        for header in (unknown_parent, known_parent):  # an orphan, and a block whose txs nobody has
            compact = decode_compact(encode_compact(header, [origin.to_bytes(6, "big")]))
            core.receive(encode_message(BlockMsg(compact)), t, origin=origin, hops=0)
    assert len(core._orphans) <= params.max_orphans and len(core._pending) <= params.max_orphans
    assert len(core._requests) <= params.max_orphans + 1  # one GET_TXS per pending block, one catch-up
    assert len(core._neighbours) <= 32 and len(core._good) <= 16 and len(core._validator_radios) == 0
    assert core.head is core.finalized  # nothing of it was taken


def test_only_a_valid_block_makes_its_sender_a_preferred_source(cluster):
    core = cluster.core(4)
    t = cluster.slot_time(3)
    forged = BlockHeader(1, 1, 2, cluster.genesis.chain_id[:8], bytes(64))
    core.receive(encode_message(BlockMsg(decode_compact(encode_compact(forged, [])))), t, origin=77, hops=0)
    core.receive(encode_message(TxMsg(decode_tx(cluster.reading(5)))), t + 1, origin=88, hops=0)  # an ordinary neighbour, heard more recently
    orphan = BlockHeader(1, 5, 3, bytes(8), bytes(64))
    core.receive(encode_message(BlockMsg(decode_compact(encode_compact(orphan, [])))), t + 2, origin=99, hops=2)
    out = core.tick(core.next_deadline())
    asked = [decode_message(s.payload) for s in out.sends if s.kind is MsgType.GET_BLOCKS]
    assert [m.to for m in asked] == [88]  # the forger was not preferred


def test_answers_to_a_storm_of_requests_stay_within_the_answer_budget(cluster, make_net):
    net = make_net([cluster.core(i) for i in range(MEMBERS)], GENESIS_TIME)
    net.run(GENESIS_TIME + 30 * SLOT)
    core = net.cores[4]
    tip = core.head.prefix
    start, sent = net.now, 0
    for k in range(600):  # a GET_BLOCKS a second for 10 minutes, each from another height
        request = encode_message(GetBlocks(core.radio_id, 1 + k % 20, tip))
        out = core.receive(request, start + k, origin=1000 + k, hops=0)
        sent += sum(len(s.payload) for s in out.sends)
    params = cluster.params
    budget = params.sync_batch_bytes + 600 / params.slot_seconds * params.answer_bytes
    assert 0 < sent <= budget  # without the budget: 600 answers of up to 1800 B
