"""Compressed frames and sync batches: flag choice, output bounds, a real catch-up batch."""
from __future__ import annotations

import hashlib

import pytest

from blockiot.chain.compression import FLAG_ZSTD, MAX_BATCH_BLOCKS, shipped_codec
from blockiot.chain.errors import DecodeError, EncodeError
from blockiot.chain.wire import Reading, Sensor


def test_frame_is_compressed_only_when_smaller():
    codec = shipped_codec()
    assert codec.pack(bytes(5000))[0] == FLAG_ZSTD and len(codec.pack(bytes(5000))) < 100
    tiny = codec.pack(b"\x01\x02\x03")
    assert tiny[0] == 0 and len(tiny) == 1 + 1 + 3 + 4


INCOMPRESSIBLE = hashlib.shake_256(b"blockiot").digest(500)


@pytest.mark.parametrize("content", [bytes(10_000), bytes(range(256)) * 8, INCOMPRESSIBLE])
def test_unpack_honours_a_smaller_bound(content):
    codec = shipped_codec()
    frame = codec.pack(content)
    assert frame[0] == (0 if content is INCOMPRESSIBLE else FLAG_ZSTD)
    assert codec.unpack(frame, max_output=len(content)) == content
    with pytest.raises(DecodeError, match=f"{len(content) - 1} B"):
        codec.unpack(frame, max_output=len(content) - 1)


def test_sync_batch_of_a_real_chain_replays(make_ledger, signers):
    leader_side, catching_up = make_ledger(), make_ledger()
    raws = []
    for slot in range(1, 21):
        tx = signers.sign(2, Reading(Sensor.MOISTURE, 300 + slot))
        raws.append(leader_side.build_block(signers.leader(leader_side, slot), slot, [tx.raw]).block.raw)
    codec = shipped_codec()
    start, blocks = codec.unpack_batch(codec.pack_batch(1, raws))
    assert (start, blocks) == (1, raws)
    for raw in blocks:
        catching_up.apply_block(raw)
    assert catching_up.head == leader_side.head


def test_pack_batch_refuses_too_many_blocks():
    with pytest.raises(EncodeError, match=f"at most {MAX_BATCH_BLOCKS} blocks"):
        shipped_codec().pack_batch(1, [b""] * (MAX_BATCH_BLOCKS + 1))


def test_each_codec_is_its_own():
    """A node's wiring makes its codec; none is shared behind its back."""
    assert shipped_codec() is not shipped_codec()
    assert shipped_codec().unpack(shipped_codec().pack(bytes(5000))) == bytes(5000)
