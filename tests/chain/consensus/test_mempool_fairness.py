"""Mempool fairness: a member flooding transactions neither evicts nor starves the others'
(docs/PROTOCOL.md §7; before, blocks took transactions by registry index and a low-index
member at 10 tx/s starved every honest reading: 0 of 84 finalized)."""
from __future__ import annotations

from blockiot.chain.consensus.events import BlockProposed
from blockiot.chain.consensus.mempool import Mempool
from blockiot.chain.ledger import Ledger
from blockiot.chain.wire import decode_tx, tx_id

from conftest import GENESIS_TIME, SLOT, Net

FLOODER = 0  # the lowest registry index: first in the old (sender, nonce) order
HONEST = (1, 2, 3, 4, 5)


def test_round_robin_across_senders_keeps_each_senders_nonce_order(cluster):
    pool = Mempool(64, per_sender=16)
    ledger = Ledger(cluster.genesis)
    for n in range(10):
        pool.add(decode_tx(cluster.reading(FLOODER, n)), float(n))
    pool.add(decode_tx(cluster.reading(4, 1)), 10.0)
    pool.add(decode_tx(cluster.reading(5, 1)), 11.0)
    pool.add(decode_tx(cluster.reading(5, 2)), 12.0)
    chosen = [decode_tx(raw) for raw in pool.candidates(ledger.state, 5, heard_before=20.0)]
    assert [(tx.sender, tx.nonce) for tx in chosen] == [(0, 1), (4, 1), (5, 1), (0, 2), (5, 2)]
    assert [(tx.sender, tx.nonce) for tx in map(decode_tx, pool.candidates(ledger.state, 3, heard_before=10.5))] == [
        (0, 1), (4, 1), (0, 2)
    ]


def test_nonce_order_holds_when_a_sender_s_txs_arrive_out_of_order(cluster):
    pool = Mempool(64)
    raws = [cluster.reading(4, n) for n in range(3)]
    for t, raw in zip((0.0, 1.0, 2.0), reversed(raws)):
        pool.add(decode_tx(raw), t)
    ledger = Ledger(cluster.genesis)
    assert pool.candidates(ledger.state, 10, heard_before=5.0) == raws
    block = ledger.build_block(cluster.identities[cluster.params.leader(1)], 1, pool.candidates(ledger.state, 10, 5.0))
    assert list(block.block.txs) == raws  # every one applies


def test_a_flooder_evicts_only_its_own_transactions(cluster):
    pool = Mempool(32, per_sender=8)
    honest = [decode_tx(cluster.reading(sender)) for sender in HONEST]
    for t, tx in enumerate(honest):
        pool.add(tx, float(t))
    for n in range(500):
        pool.add(decode_tx(cluster.reading(FLOODER, n)), 10.0 + n / 10)
    assert all(tx.id in pool for tx in honest)
    assert pool.held_by(FLOODER) == 8 and len(pool) == 13
    # A full pool drops the oldest of whoever holds most: never a quiet sender's one tx.
    small = Mempool(4, per_sender=4)
    small.add(honest[0], 0.0)
    for n in range(10):
        small.add(decode_tx(cluster.reading(FLOODER, n)), 1.0 + n)
    assert honest[0].id in small and small.held_by(FLOODER) == 3


def test_every_honest_reading_is_a_candidate_within_two_blocks_while_one_member_floods(cluster):
    """10 tx/s from member 0 for 300 s, one reading from each other member every 20 s; a
    leader builds a full block every slot from `candidates` on its state."""
    pool = Mempool(cluster.params.mempool_size)
    ledger = Ledger(cluster.genesis)
    limit = cluster.params.max_block_txs
    waiting: dict[bytes, int] = {}  # honest tx id -> slot it was heard in
    late = []
    included = 0
    for tick in range(3000):
        now = tick / 10
        slot = tick // (10 * SLOT) + 1
        pool.add(decode_tx(cluster.reading(FLOODER, tick)), now)
        if tick % 200 == 7:
            for sender in HONEST:
                tx = decode_tx(cluster.reading(sender, tick))
                pool.add(tx, now)
                waiting[tx.id] = slot
        if (tick + 1) % (10 * SLOT) == 0:  # the end of the slot: its leader builds
            raws = pool.candidates(ledger.state, limit, heard_before=now)
            block = ledger.build_block(cluster.identities[cluster.params.leader(slot)], slot, raws).block
            assert len(block.txs) == len(raws)  # nonce order kept: every candidate applies
            pool.prune(ledger.state)
            for raw in block.txs:
                heard = waiting.pop(tx_id(raw), None)
                if heard is not None:
                    included += 1
                    if slot - heard > 1:
                        late.append((heard, slot))
    assert included == 15 * len(HONEST) and not waiting and not late


def test_flooding_member_does_not_starve_readings_through_the_cores(cluster):
    """The same, end to end: six cores on a lossless net, member 0 (a validator) floods."""
    cores = [cluster.core(i) for i in range(6)]
    net = Net(cores, GENESIS_TIME)
    sent: dict[bytes, float] = {}
    t = GENESIS_TIME
    for step in range(1, 1201):  # 240 s in steps of 0.2 s
        t = GENESIS_TIME + step / 5
        net.now = t - 0.2
        net.submit(FLOODER, cluster.reading(FLOODER, step))
        net.submit(FLOODER, cluster.reading(FLOODER, step))
        if step % 100 == 13 and t < GENESIS_TIME + 200:
            for sender in HONEST:
                raw = cluster.reading(sender, step)
                net.submit(sender, raw)
                sent[tx_id(raw)] = net.now
        net.run(t, step=0.2)
    proposed = [e for events in net.events for e in events if isinstance(e, BlockProposed)]
    first_block: dict[bytes, float] = {}
    for event in sorted(proposed, key=lambda e: e.at):
        for txid in event.tx_ids:
            first_block.setdefault(txid, event.at)
    assert set(sent) <= set(first_block)
    waits = [first_block[txid] - heard for txid, heard in sent.items()]
    assert max(waits) <= 2 * SLOT + 1
