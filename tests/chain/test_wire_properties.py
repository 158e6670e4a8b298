"""Property tests of every chain encoding: round trips, and fuzzing of each decoder with
random bytes and damaged valid encodings (only DecodeError or a valid object may result)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blockiot.chain.compression import DEFAULT_MAX_OUTPUT, MAX_BATCH_BLOCKS, shipped_codec
from blockiot.chain.errors import DecodeError, EncodeError
from blockiot.chain.genesis import decode_genesis, encode_genesis
from blockiot.chain.state import StateDiff
from blockiot.chain.wire import (
    MAX_TX_BYTES,
    TX_BODIES,
    Block,
    CompactBlock,
    Data,
    decode_block,
    decode_compact,
    decode_tx,
    encode_block,
    encode_compact,
    encode_unsigned,
    sign_tx,
)

from chain_strategies import (
    CHAIN_ID,
    SIGNER,
    bodies,
    frame_contents,
    geneses,
    headers,
    mutated,
    nonces,
    raw_txs,
    senders,
    short_id_lists,
    state_diffs,
)

CODEC = shipped_codec()  # made at the test's edge, as a node's wiring makes its own

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

blocks = st.builds(lambda h, txs: encode_block(h, txs), headers, st.lists(raw_txs(), max_size=6))
compacts = st.builds(lambda h, ids: encode_compact(h, ids), headers, short_id_lists)
genesis_encodings = geneses().map(encode_genesis)
frames = frame_contents.map(CODEC.pack)
batches = st.builds(
    lambda start, raws: CODEC.pack_batch(start, raws),
    st.integers(0, 2**32),
    st.lists(st.binary(max_size=300), max_size=12),
)
diff_encodings = state_diffs().map(lambda d: d.encode())


# --- round trips -------------------------------------------------------------------------


@ROUND
@given(bodies, senders, nonces)
def test_tx_round_trip_every_kind(body, sender, nonce):
    tx = sign_tx(SIGNER, CHAIN_ID, sender, nonce, body)
    assert len(tx.raw) <= MAX_TX_BYTES
    assert decode_tx(tx.raw) == tx
    assert isinstance(body, TX_BODIES[tx.kind][1])


@ROUND
@given(st.binary(max_size=160), st.integers(0, 2**63 - 1), nonces)
@example(bytes(160), 2**63 - 1, 2**63 - 1)  # the largest fields of all: 245 B, over the 240 B bound
def test_data_tx_encodes_only_what_decodes(payload, sender, nonce):
    """Whatever sign_tx accepts, decode_tx accepts: no tx is built that peers refuse."""
    try:
        tx = sign_tx(SIGNER, CHAIN_ID, sender, nonce, Data(payload))
    except EncodeError as exc:
        assert str(exc)
    else:
        assert decode_tx(tx.raw) == tx


@ROUND
@given(headers, st.lists(raw_txs(), max_size=6))
def test_block_round_trip(header, txs):
    raw = encode_block(header, txs)
    assert decode_block(raw) == Block(header, tuple(txs), raw)


@ROUND
@given(headers, short_id_lists)
def test_compact_round_trip(header, ids):
    raw = encode_compact(header, ids)
    assert decode_compact(raw) == CompactBlock(header, tuple(ids), raw)


@ROUND
@given(geneses())
def test_genesis_round_trip(genesis):
    decoded = decode_genesis(genesis.encoded)
    assert decoded == genesis
    assert decoded.chain_id == genesis.chain_id


@ROUND
@given(frame_contents)
def test_frame_round_trip(content):
    frame = CODEC.pack(content)
    assert CODEC.unpack(frame) == content
    assert len(frame) <= len(content) + 8  # flag, length varint (<= 2 B here), CRC: never much larger


@ROUND
@given(st.integers(0, 2**32), st.lists(st.binary(max_size=300), max_size=12))
def test_sync_batch_round_trip(start, raws):
    assert CODEC.unpack_batch(CODEC.pack_batch(start, raws)) == (start, raws)


@ROUND
@given(state_diffs())
def test_state_diff_round_trip(diff):
    assert StateDiff.decode(diff.encode()).changes == diff.changes


# --- fuzzing: each decoder against garbage and damaged valid encodings ---------------------


def _tx_ok(tx):
    encode_unsigned(tx.kind, tx.sender, tx.nonce, tx.body)  # every field in range


def _block_ok(block):
    assert encode_block(block.header, block.txs) == block.raw
    for raw_tx in block.txs:
        decode_tx(raw_tx)


def _compact_ok(cb):
    assert encode_compact(cb.header, cb.short_ids) == cb.raw


def _genesis_ok(raw, genesis):
    assert genesis.encoded == raw


DECODERS = {
    "tx": (decode_tx, raw_txs(), lambda raw, tx: _tx_ok(tx)),
    "block": (decode_block, blocks, lambda raw, b: _block_ok(b)),
    "compact": (decode_compact, compacts, lambda raw, cb: _compact_ok(cb)),
    "genesis": (decode_genesis, genesis_encodings, _genesis_ok),
    "frame": (CODEC.unpack, frames, lambda raw, content: len(content) <= DEFAULT_MAX_OUTPUT),
    "batch": (CODEC.unpack_batch, batches, lambda raw, b: len(b[1]) <= MAX_BATCH_BLOCKS),
    "diff": (StateDiff.decode, diff_encodings, lambda raw, d: d.encode() == raw),
}


def _decode_or_refuse(name: str, raw: bytes) -> None:
    decode, _valid, check = DECODERS[name]
    try:
        result = decode(raw)
    except DecodeError as exc:
        assert str(exc), f"{name}: DecodeError without a message"
        return
    assert check(raw, result) is not False


@pytest.mark.parametrize("name", DECODERS)
@FUZZ
@given(data=st.data())
def test_random_bytes_decode_or_refuse(name, data):
    _decode_or_refuse(name, data.draw(st.binary(max_size=400)))


@pytest.mark.parametrize("name", DECODERS)
@FUZZ
@given(data=st.data())
def test_damaged_encodings_decode_or_refuse(name, data):
    _decode_or_refuse(name, data.draw(mutated(DECODERS[name][1])))
