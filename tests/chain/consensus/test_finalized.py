"""The finalized chain a core keeps: a window of ids and a cache of raw blocks bounded by
count whatever the chain's length, the rest read from its source (a store, or memory);
a core restored from a store of 5,000 blocks answers a catch-up from height 1."""
from __future__ import annotations

import pytest

from blockiot.chain.compression import default_codec
from blockiot.chain.consensus.finalized import FINAL_WINDOW, RAW_CACHE, FinalizedChain, MemoryChain
from blockiot.chain.consensus.messages import Blocks, GetBlocks, decode_message, encode_message, pack_blocks
from blockiot.chain.consensus.params import ConsensusConfigError
from blockiot.chain.consensus.recovery import restore
from blockiot.chain.ledger import Ledger
from blockiot.chain.store import ChainStore, StoredChain
from blockiot.chain.wire import PARENT_PREFIX_LEN

from conftest import GENESIS_TIME, SLOT, make_cluster

CHAIN = 5000


@pytest.fixture(scope="module")
def long_chain(tmp_path_factory):
    """A store holding CHAIN finalized blocks of the consensus test cluster, one reading in
    every tenth; (cluster, data dir, [(height, id, raw)])."""
    cluster = make_cluster()
    data_dir = tmp_path_factory.mktemp("long")
    store = ChainStore(data_dir)
    store.db.execute("PRAGMA synchronous=OFF")  # built for the test only: the same file, written faster
    ledger = Ledger(cluster.genesis, store)
    for slot in range(1, CHAIN + 1):
        txs = [cluster.reading(4, slot)] if slot % 10 == 0 else []
        ledger.build_block(cluster.identities[cluster.params.leader(slot)], slot, txs)
    blocks = list(store.raw_blocks())
    store.close()
    return cluster, data_dir, blocks


def ask(core, from_height: int, tip: bytes, now: float, chain=None) -> tuple[int, list[bytes]]:
    """The blocks a core's answer to GET_BLOCKS carries: (first height, raw blocks). With
    `chain` (every raw block), the answer must be what the whole chain packs into, as far
    as the answer budget (a full bucket: `sync_batch_bytes`) pays for."""
    out = core.receive(encode_message(GetBlocks(core.radio_id, from_height, tip)), now, origin=99, hops=0)
    if chain is not None:
        whole = pack_blocks(tip, chain[from_height - 1 :], from_height, default_codec(),
                            max_bytes=core.params.frame_bytes, max_block_bytes=core.params.sync_batch_bytes)
        sent = [send.payload for send in out.sends]
        assert sent == whole[: len(sent)]
        assert len(sent) == len(whole) or sum(map(len, whole[: len(sent) + 1])) > core.params.sync_batch_bytes
    first, raws = None, []
    for send in out.sends:
        msg = decode_message(send.payload)
        assert isinstance(msg, Blocks) and msg.tip == tip
        start, batch = default_codec().unpack_batch(msg.frame)
        first = start if first is None else first
        assert start == first + len(raws)
        raws += batch
    return first, raws


def test_a_core_restored_from_5000_blocks_answers_from_height_1_holding_a_bounded_window(long_chain):
    cluster, data_dir, blocks = long_chain
    store = ChainStore(data_dir)
    ledger, finalized = restore(cluster.genesis, store)
    core = cluster.core(5, now=GENESIS_TIME + (CHAIN + 1) * SLOT, ledger=ledger, finalized=finalized)
    assert core.finalized.height == CHAIN and core.final.in_memory() == (FINAL_WINDOW, 0)
    now = GENESIS_TIME + (CHAIN + 1) * SLOT
    head = blocks[-1][1][:PARENT_PREFIX_LEN]
    for from_height in (1, CHAIN // 2, CHAIN - FINAL_WINDOW - 3, CHAIN - 5):
        now += 100 * SLOT  # the answer budget refills
        first, raws = ask(core, from_height, head, now, chain=[raw for _h, _id, raw in blocks])
        assert first == from_height and raws
        assert raws == [raw for _h, _id, raw in blocks[from_height - 1 : from_height - 1 + len(raws)]]
        ids, cached = core.final.in_memory()
        assert ids == FINAL_WINDOW and cached <= RAW_CACHE
    # a tip finalized long ago is not looked up: no answer, and nothing read for it
    assert ask(core, 1, blocks[10][1][:PARENT_PREFIX_LEN], now + 100 * SLOT) == (None, [])
    assert core.final.id_at(1) == blocks[0][1] and core.final.id_at(CHAIN + 1) is None
    store.close()


def test_the_finalized_chain_must_end_where_the_ledger_does(long_chain):
    cluster, data_dir, blocks = long_chain
    with pytest.raises(ConsensusConfigError, match="ends at height 3, the ledger at 0"):
        cluster.core(5, finalized=blocks[:3])
    store = ChainStore(data_dir, read_only=True)
    with pytest.raises(ConsensusConfigError, match=f"ends at height {CHAIN}, the ledger at 0"):
        cluster.core(5, finalized=StoredChain(store))
    store.close()


@pytest.mark.parametrize("on_disk", [False, True])
def test_memory_stays_bounded_by_count_as_blocks_are_finalized(long_chain, tmp_path, on_disk):
    """Blocks finalized one after another, the source kept as a node would (its runtime
    appends to the store; a disk-less node's MemoryChain is fed by the core)."""
    cluster, data_dir, blocks = long_chain
    store = ChainStore(tmp_path) if on_disk else None
    source = StoredChain(store) if on_disk else MemoryChain()
    final = FinalizedChain(cluster.genesis.chain_id, source, window=8, cache=4)
    assert final.load_votes(cluster.params.n, cluster.params.q)[-1].slot == -1  # the genesis' vote
    raws = []
    for height, block_id, raw in blocks[:300]:
        final.append(height, block_id, height, raw)
        if on_disk:
            store.db["blocks"].insert({"height": height, "id": block_id, "slot": height, "raw": raw})
        raws.append(final.raw_at(max(1, height - 20)))  # an answer reading an older block
        ids, cached = final.in_memory()
        assert ids <= 8 and cached <= 4
    assert raws == [blocks[max(1, h - 20) - 1][2] for h in range(1, 301)]
    assert [final.height_of(block_id[:PARENT_PREFIX_LEN]) for _h, block_id, _raw in blocks[290:300]] == [None, None] + list(range(293, 301))
    assert final.height_of(cluster.genesis.chain_id[:PARENT_PREFIX_LEN]) == 0
    assert [final.id_at(h) for h in (0, 1, 150, 300, 301)] == [cluster.genesis.chain_id, blocks[0][1], blocks[149][1], blocks[299][1], None]
    assert len(source) == 300 and list(source)[:2] == blocks[:2]
    if store is not None:
        store.close()


def test_a_memory_chain_takes_consecutive_heights_from_1():
    cluster = make_cluster()
    ledger = Ledger(cluster.genesis)
    applied = [ledger.build_block(cluster.identities[cluster.params.leader(s)], s, []) for s in (1, 2)]
    with pytest.raises(ValueError, match="height 2 after height 0"):
        MemoryChain([(2, applied[1].id, applied[1].block.raw)])
    chain = MemoryChain((a.block.header.height, a.id, a.block.raw) for a in applied)
    assert list(chain.headers()) == [(1, applied[0].id, 1), (2, applied[1].id, 2)]
    assert chain.block(2) == (applied[1].id, applied[1].block.raw) and chain.block(3) is None and chain.block(0) is None
