"""Consensus messages under hostile input: canonical transaction indices (no repeat, no
disorder, within a block) and answers cut to the radio's size (docs/PROTOCOL.md §3, §7, §9)."""
from __future__ import annotations

import random

import pytest
from construct import PrefixedArray, VarInt

from blockiot.chain.compression import default_codec
from blockiot.chain.consensus.messages import (
    MAX_MESSAGE_BYTES,
    MAX_RAW_TX_BYTES,
    BlockMsg,
    Blocks,
    GetTxs,
    MsgType,
    Txs,
    decode_message,
    encode_message,
    pack_blocks,
    pack_txs,
)
from blockiot.chain.errors import DecodeError
from blockiot.chain.ledger import Ledger
from blockiot.chain.wire import MAX_BLOCK_TXS, Data, compact_from_block, decode_compact, sign_tx

REF = b"r" * 8


def _get_txs(indices, to: int = 7) -> bytes:
    return bytes([MsgType.GET_TXS]) + VarInt.build(to) + REF + PrefixedArray(VarInt, VarInt).build(list(indices))


def test_a_get_txs_repeating_an_index_is_refused():
    # The request of the report: 524 B naming index 0 again and again drew a 36 KB answer.
    hostile = _get_txs([0] * 512)
    assert len(hostile) == 524
    with pytest.raises(DecodeError, match="repeat"):
        decode_message(hostile)


@pytest.mark.parametrize(
    "indices, reason",
    [([], "no transaction"), ([3, 1], "order"), ([1, 1], "repeat"), ([0, MAX_BLOCK_TXS], "beyond"), ([2**62], "beyond")],
)
def test_get_txs_indices_must_be_strictly_increasing_and_within_a_block(indices, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_message(_get_txs(indices))
    with pytest.raises(DecodeError):
        encode_message(GetTxs(7, REF, tuple(indices)))  # we never send what peers refuse


def test_get_txs_within_bounds_round_trips_and_the_node_may_bound_it_further():
    msg = GetTxs(7, REF, tuple(range(0, MAX_BLOCK_TXS, 2)))
    assert decode_message(encode_message(msg)) == msg
    assert decode_message(_get_txs([0, 22]), max_block_txs=23) == GetTxs(7, REF, (0, 22))
    with pytest.raises(DecodeError, match="beyond a block of 23"):
        decode_message(_get_txs([0, 23]), max_block_txs=23)


def test_txs_and_prefilled_indices_are_canonical_too(cluster):
    raw = cluster.reading(4)
    for items in (((1, raw), (1, raw)), ((2, raw), (1, raw)), ()):
        with pytest.raises(DecodeError):
            encode_message(Txs(REF, items))
        body = bytes([MsgType.TXS]) + REF + VarInt.build(len(items))
        body += b"".join(VarInt.build(i) + VarInt.build(len(r)) + r for i, r in items)
        with pytest.raises(DecodeError):
            decode_message(body)
    with pytest.raises(DecodeError, match="longer than"):
        encode_message(Txs(REF, ((0, bytes(MAX_RAW_TX_BYTES + 1)),)))


def _full_block(cluster, txs: int, data_bytes: int = 0):
    """A block of `txs` transactions by the leader of slot 1 (readings, or DATA payloads)."""
    ledger = Ledger(cluster.genesis)
    raws = []
    for n in range(txs):
        sender = 4 + n % 2
        if data_bytes:
            cluster.nonces[sender] += 1
            body = Data(random.Random(n).randbytes(data_bytes))
            tx = sign_tx(cluster.identities[sender], cluster.genesis.chain_id, sender, cluster.nonces[sender], body)
            raws.append(tx.raw)
        else:
            raws.append(cluster.reading(sender, n))
    return ledger.build_block(cluster.identities[cluster.params.leader(1)], 1, raws).block


@pytest.mark.parametrize("data_bytes", [0, 160])
def test_an_honest_request_for_every_tx_of_a_full_block_is_answered_in_frames(cluster, data_bytes):
    frame = cluster.params.frame_bytes
    block = _full_block(cluster, cluster.params.max_block_txs, data_bytes)
    items = tuple(enumerate(block.txs))
    assert len(items) == cluster.params.max_block_txs
    whole = encode_message(Txs(REF, items))
    assert len(whole) > frame  # one message would need fragments (or, for DATA, exceed the link)
    messages = pack_txs(REF, items, frame)
    for payload in messages:
        msg = decode_message(payload)
        assert len(payload) <= frame or len(msg.items) == 1
        assert len(payload) <= MAX_MESSAGE_BYTES
    assert tuple(item for payload in messages for item in decode_message(payload).items) == items


def test_pack_txs_of_nothing_is_no_message():
    assert pack_txs(REF, (), 229) == []


def _chain(cluster, blocks: int, txs: int = 2, data_bytes: int = 0) -> list[bytes]:
    ledger = Ledger(cluster.genesis)
    raws = []
    for slot in range(1, blocks + 1):
        batch = []
        for n in range(txs):
            sender = 4 + n % 2
            cluster.nonces[sender] += 1
            body = Data(random.Random(slot * 1000 + n).randbytes(data_bytes))  # incompressible
            batch.append(sign_tx(cluster.identities[sender], cluster.genesis.chain_id, sender, cluster.nonces[sender], body).raw)
        raws.append(ledger.build_block(cluster.identities[cluster.params.leader(slot)], slot, batch).block.raw)
    return raws


def test_pack_blocks_cuts_a_catch_up_answer_into_frames(cluster):
    raws = _chain(cluster, 12, txs=1, data_bytes=20)
    messages = pack_blocks(b"t" * 8, raws, 1, default_codec(), max_bytes=229, max_block_bytes=10**6)
    got = []
    for n, payload in enumerate(messages):
        msg = decode_message(payload)
        assert isinstance(msg, Blocks) and msg.more == (n < len(messages) - 1)
        start, blocks = default_codec().unpack_batch(msg.frame)
        assert start == 1 + len(got)
        assert len(payload) <= 229 or len(blocks) == 1
        got += blocks
    assert got == raws


def test_pack_blocks_stops_at_the_byte_budget_and_before_a_block_nobody_could_receive(cluster):
    raws = _chain(cluster, 6, txs=1, data_bytes=20)
    messages = pack_blocks(b"t" * 8, raws, 1, default_codec(), max_bytes=229, max_block_bytes=len(raws[0]) + 1)
    carried = [b for p in messages for b in default_codec().unpack_batch(decode_message(p).frame)[1]]
    assert carried == raws[:2]  # the budget is checked before each batch, as the node did
    huge = _chain(cluster, 1, txs=23, data_bytes=160)  # 23 DATA txs of 160 random B: over 4 KiB compressed
    assert len(encode_message(Blocks(b"t" * 8, False, default_codec().pack_batch(7, huge)))) > MAX_MESSAGE_BYTES
    assert pack_blocks(b"t" * 8, huge, 7, default_codec(), max_bytes=229, max_block_bytes=10**6) == []


def test_block_prefilled_indices_must_name_short_ids_in_order(cluster):
    block = _full_block(cluster, 3)
    compact = decode_compact(compact_from_block(block, cluster.genesis.chain_id))
    ok = BlockMsg(compact, ((0, block.txs[0]), (2, block.txs[2])))
    assert decode_message(encode_message(ok)) == ok
    for prefilled in (((2, block.txs[2]), (0, block.txs[0])), ((3, block.txs[0]),)):
        with pytest.raises(DecodeError):
            encode_message(BlockMsg(compact, prefilled))
