"""Ledger behaviour: which blocks and txs are refused, and that a refused block changes nothing."""
from __future__ import annotations

import copy

import pytest

from blockiot.chain.errors import DecodeError, InvalidBlock, InvalidTx
from blockiot.chain.wire import (
    BLOCK_VERSION,
    PARENT_PREFIX_LEN,
    Action,
    BlockHeader,
    Command,
    Data,
    Reading,
    Sensor,
    decode_tx,
    encode_block,
    header_signing_bytes,
    sign_tx,
    tx_root,
)


def forge_block(ledger, identity, slot, raw_txs, *, height=None, parent=None, state_root=None) -> bytes:
    """A block signed by `identity` with any fields: for blocks the ledger must refuse.
    The signature covers `state_root` (default: the head's current state root)."""
    height = ledger.height + 1 if height is None else height
    parent = ledger.head.id if parent is None else parent
    state_root = ledger.state.state_root() if state_root is None else state_root
    signing = header_signing_bytes(ledger.chain_id, BLOCK_VERSION, height, slot, parent, tx_root(raw_txs), state_root)
    header = BlockHeader(BLOCK_VERSION, height, slot, parent[:PARENT_PREFIX_LEN], identity.sign(signing))
    return encode_block(header, list(raw_txs))


@pytest.fixture
def ledger(make_ledger, signers):
    ledger = make_ledger()
    signers.build_blocks(ledger, [1, 2, 3])
    return ledger


# --- transactions ---------------------------------------------------------------------------


def test_replayed_nonce_is_rejected(ledger, signers):
    tx = signers.sign(2, Reading(Sensor.TEMPERATURE, 1234))
    ledger.state.apply_tx(tx, slot=9)
    with pytest.raises(InvalidTx, match="replayed nonce"):
        ledger.state.apply_tx(tx, slot=9)
    older = signers.sign(2, Reading(Sensor.TEMPERATURE, 1), nonce=tx.nonce - 1)
    with pytest.raises(InvalidTx, match="replayed nonce"):
        ledger.state.apply_tx(older, slot=9)


def test_nonce_gaps_are_allowed(ledger, signers):
    ledger.state.apply_tx(signers.sign(2, Reading(Sensor.LIGHT, 5), nonce=100), slot=9)
    assert ledger.state.next_nonce(2) == 101


def test_replayed_tx_in_a_block_is_rejected(ledger, signers, snapshot):
    old_tx = signers.sign(2, Reading(Sensor.MOISTURE, 1), nonce=1)  # nonce 1 was used in block 1
    before = snapshot(ledger)
    raw = forge_block(ledger, signers.leader(ledger, 4), 4, [old_tx.raw])
    with pytest.raises(InvalidBlock, match="replayed nonce"):
        ledger.apply_block(raw)
    assert snapshot(ledger) == before


@pytest.mark.parametrize(
    "forgery",
    ["wrong key", "other chain", "flipped signature bit", "unknown sender"],
)
def test_forged_tx_signature_is_rejected(ledger, signers, identities, forgery, snapshot):
    body = Reading(Sensor.MOISTURE, 300)
    nonce = ledger.state.next_nonce(2)
    if forgery == "wrong key":
        tx = sign_tx(identities[3], ledger.chain_id, 2, nonce, body)
    elif forgery == "other chain":
        tx = sign_tx(identities[2], bytes(32), 2, nonce, body)
    elif forgery == "flipped signature bit":
        raw = sign_tx(identities[2], ledger.chain_id, 2, nonce, body).raw
        tx = decode_tx(raw[:-64] + bytes([raw[-64] ^ 1]) + raw[-63:])
    else:
        tx = sign_tx(identities[2], ledger.chain_id, 99, 1, body)
    before = snapshot(ledger)
    with pytest.raises(InvalidTx, match="bad signature|not a member"):
        ledger.state.apply_tx(tx, slot=9)
    assert snapshot(ledger) == before
    with pytest.raises(InvalidBlock, match="bad signature|not a member"):
        ledger.apply_block(forge_block(ledger, signers.leader(ledger, 4), 4, [tx.raw]))
    assert snapshot(ledger) == before


def test_command_to_a_non_member_is_rejected(ledger, signers, snapshot):
    tx = signers.sign(0, Command(42, Action.CLOSE))
    before = snapshot(ledger)
    with pytest.raises(InvalidTx, match="not a member"):
        ledger.state.apply_tx(tx, slot=9)
    assert snapshot(ledger) == before


# --- blocks ---------------------------------------------------------------------------------


def test_forged_block_signature_is_rejected(make_ledger, signers, identities, snapshot):
    """Over the right state root but signed by a validator who is not the slot's leader or by
    a non-validator; or signed by the leader over a state root the txs do not produce."""
    leader_side, follower = make_ledger(), make_ledger()
    for applied in signers.build_blocks(leader_side, [1, 2, 3]):
        follower.apply_block(applied.block.raw)
    slot, txs = 4, [signers.sign(2, Reading(Sensor.MOISTURE, 301)).raw]
    pre_root = follower.state.state_root()
    real = leader_side.build_block(signers.leader(leader_side, slot), slot, txs)
    leader = follower.leader_for_slot(slot)
    other_validator = next(v for v in follower.genesis.validators if v != leader)
    before = snapshot(follower)
    for signer, root in [
        (other_validator, real.state_root),
        (2, real.state_root),
        (leader, bytes(32)),
        (leader, pre_root),
    ]:
        raw = forge_block(follower, identities[signer], slot, txs, state_root=root)
        with pytest.raises(InvalidBlock, match="not signed by the slot's leader"):
            follower.apply_block(raw)
        assert snapshot(follower) == before
    assert follower.apply_block(real.block.raw).id == real.id


def test_block_with_flipped_signature_bit_is_rejected(make_ledger, signers, snapshot):
    source = make_ledger()
    raw = signers.build_blocks(source, [1])[0].block.raw
    target = make_ledger()
    before = snapshot(target)
    damaged = bytearray(raw)
    damaged[20] ^= 0x10  # inside the 64-byte leader signature (bytes 11..74)
    with pytest.raises(InvalidBlock, match="not signed"):
        target.apply_block(bytes(damaged))
    assert snapshot(target) == before
    target.apply_block(raw)
    assert target.head == source.head


def test_wrong_leader_cannot_build(ledger, identities):
    slot = 4
    not_leader = next(i for i in ledger.genesis.validators if i != ledger.leader_for_slot(slot))
    with pytest.raises(InvalidBlock, match="not the leader"):
        ledger.build_block(identities[not_leader], slot, [])


def test_wrong_parent_is_rejected(make_ledger, signers, snapshot):
    a, b = make_ledger(), make_ledger()
    signers.build_blocks(a, [1])
    b_signers = type(signers)(signers.genesis, signers.identities)
    b_signers.build_blocks(b, [2])  # a different block 1
    raw = signers.build_blocks(a, [3])[0].block.raw  # block 2 on a's block 1
    before = snapshot(b)
    with pytest.raises(InvalidBlock, match="does not build on the head"):
        b.apply_block(raw)
    assert snapshot(b) == before


@pytest.mark.parametrize("height", [0, 1, 3, 5])
def test_bad_height_is_rejected(ledger, signers, height, snapshot):
    before = snapshot(ledger)
    raw = forge_block(ledger, signers.leader(ledger, 4), 4, [], height=height)
    with pytest.raises(InvalidBlock, match="does not follow head 3"):
        ledger.apply_block(raw)
    assert snapshot(ledger) == before


def test_slot_must_advance(ledger, signers, snapshot):
    before = snapshot(ledger)
    for slot in (2, 3):
        with pytest.raises(InvalidBlock, match="not after the head's slot 3"):
            ledger.apply_block(forge_block(ledger, signers.leader(ledger, slot), slot, []))
        with pytest.raises(InvalidBlock, match="not after the head's slot 3"):
            ledger.build_block(signers.leader(ledger, slot), slot, [])
    assert snapshot(ledger) == before


@pytest.mark.parametrize("bad_position", [0, 1, 2])
def test_block_with_one_bad_tx_changes_nothing(ledger, signers, identities, bad_position, snapshot):
    """Good txs are applied, then a bad one refuses the block: everything is rolled back."""
    txs = [
        signers.sign(2, Reading(Sensor.MOISTURE, 400)).raw,
        signers.sign(0, Command(3, Action.CLOSE)).raw,
        signers.sign(1, Data(b"log line")).raw,
    ]
    txs[bad_position] = sign_tx(identities[3], ledger.chain_id, 2, 99, Reading(Sensor.MOISTURE, 1)).raw
    before = snapshot(ledger)
    with pytest.raises(InvalidBlock, match=f"tx {bad_position}: bad signature"):
        ledger.apply_block(forge_block(ledger, signers.leader(ledger, 4), 4, txs))
    assert snapshot(ledger) == before


def test_block_with_a_malformed_tx_changes_nothing(ledger, signers, snapshot):
    good = signers.sign(2, Reading(Sensor.MOISTURE, 400)).raw
    before = snapshot(ledger)
    with pytest.raises(DecodeError, match="block tx 1"):
        ledger.apply_block(forge_block(ledger, signers.leader(ledger, 4), 4, [good, good[:-1]]))
    assert snapshot(ledger) == before


def test_valid_txs_under_a_bad_block_signature_change_nothing(ledger, signers, snapshot):
    """The signature is checked after every tx was applied: the rollback must undo them all."""
    txs = [signers.sign(2, Reading(Sensor.MOISTURE, 410 + i)).raw for i in range(5)]
    before = snapshot(ledger)
    with pytest.raises(InvalidBlock):
        ledger.apply_block(forge_block(ledger, signers.leader(ledger, 4), 4, txs, state_root=bytes(32)))
    assert snapshot(ledger) == before
    assert ledger.build_block(signers.leader(ledger, 4), 4, txs).block.txs == tuple(txs)


def test_build_block_skips_invalid_txs(ledger, signers, identities):
    reading = signers.sign(2, Reading(Sensor.MOISTURE, 500))
    command = signers.sign(0, Command(3, Action.SET, (7,)))
    candidates = [
        reading.raw,
        reading.raw,  # replay of the tx just before it
        sign_tx(identities[3], ledger.chain_id, 2, 50, Reading(Sensor.MOISTURE, 1)).raw,  # forged
        sign_tx(identities[2], ledger.chain_id, 2, 1, Reading(Sensor.MOISTURE, 1)).raw,  # nonce used in block 1
        b"\x01\x02garbage",
        sign_tx(identities[3], ledger.chain_id, 77, 1, Data(b"")).raw,  # unknown sender
        signers.sign(1, Command(40, Action.OPEN, (1,))).raw,  # target is no member
        command.raw,
    ]
    applied = ledger.build_block(signers.leader(ledger, 4), 4, candidates)
    assert applied.block.txs == (reading.raw, command.raw)
    assert ledger.state.get("reading", (2, Sensor.MOISTURE)) == (500, 4)
    assert ledger.state.get("command", (3,)) == (0, Action.SET, 4, 7)


def test_built_blocks_apply_on_a_fresh_ledger(make_ledger, signers):
    """Every block the leader built is accepted by a follower, which reaches the same head."""
    leader_ledger, follower = make_ledger(), make_ledger()
    for applied in signers.build_blocks(leader_ledger, range(1, 8)):
        got = follower.apply_block(applied.block.raw)
        assert (got.id, got.state_root) == (applied.id, applied.state_root)
    assert follower.head == leader_ledger.head


# --- state root, diffs ------------------------------------------------------------------------


def test_state_root_is_deterministic_across_ledgers(make_ledger, signers):
    a, b = make_ledger(), make_ledger()
    for applied in signers.build_blocks(a, range(1, 12, 2)):
        assert b.apply_block(applied.block.raw).state_root == applied.state_root
        assert b.state.state_root() == applied.state_root
    assert b.head == a.head
    assert b.state.state_root() == a.state.state_root()
    assert b.state.tables == a.state.tables


def test_state_root_is_independent_of_insertion_order(make_ledger):
    entries = [("reading", (d, s), (d * 10 + s, 7)) for d in range(4) for s in (1, 2, 5)]
    entries += [("nonce", (d,), (d + 3,)) for d in range(4)] + [("command", (3,), (0, 1, 7, 600))]
    forward, backward = make_ledger().state, make_ledger().state
    for table, key, value in entries:
        forward.set(table, key, value)
    for table, key, value in reversed(entries):
        backward.set(table, key, value)
    assert list(forward.tables["reading"]) != list(backward.tables["reading"])
    assert forward.state_root() == backward.state_root()


def test_undo_and_redo_of_diffs(make_ledger, signers):
    ledger = make_ledger()
    genesis_root = ledger.state.state_root()
    blocks = signers.build_blocks(ledger, range(1, 7))
    final_root, final_tables = ledger.state.state_root(), copy.deepcopy(ledger.state.tables)
    for applied in reversed(blocks):
        assert ledger.state.state_root() == applied.state_root
        ledger.state.undo(applied.diff)
    assert ledger.state.state_root() == genesis_root
    assert all(not rows for rows in ledger.state.tables.values())
    for applied in blocks:
        ledger.state.redo(applied.diff)
        assert ledger.state.state_root() == applied.state_root
    assert ledger.state.tables == final_tables and ledger.state.state_root() == final_root


def test_diff_records_old_and_new_values(make_ledger, signers):
    ledger = make_ledger()
    first, second = signers.build_blocks(ledger, [1, 2])
    assert first.diff.changes[("reading", (2, Sensor.MOISTURE))] == (None, (251, 1))
    assert second.diff.changes[("reading", (2, Sensor.MOISTURE))] == ((251, 1), (252, 2))
    assert second.diff.changes[("nonce", (0,))] == ((1,), (2,))


def test_a_signature_checked_on_arrival_is_not_checked_again_in_a_block(make_ledger, signers, monkeypatch):
    from nacl.signing import VerifyKey

    ledger = make_ledger()
    tx = signers.sign(1, Reading(Sensor.MOISTURE, 7))
    ledger.state.check_signature(tx)  # as the node does when the tx is heard
    checked = []
    real = VerifyKey.verify
    monkeypatch.setattr(VerifyKey, "verify", lambda self, *a: checked.append(a) or real(self, *a))
    ledger.build_block(signers.leader(ledger, 1), 1, [tx.raw])
    assert checked == []
    forged = decode_tx(tx.raw[:-1] + bytes([tx.raw[-1] ^ 1]))  # same tx, another signature
    with pytest.raises(InvalidTx):
        ledger.state.check_signature(forged)
    assert len(checked) == 1
