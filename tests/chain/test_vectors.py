"""Known-answer vectors: the code must reproduce tests/vectors/chain.toml byte for byte."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from blockiot.chain.compression import crc32c, shipped_codec
from blockiot.chain.crypto import Identity, verify
from blockiot.chain.genesis import Genesis, Member, Params, decode_genesis
from blockiot.chain.ledger import Ledger
from blockiot.chain.privacy import DeviceKey, Keychain, TxOrigin, decode_envelope, decode_rotation
from blockiot.chain.privacy.holder import KeyReceived, Opened, open_final_block, rotate, seal_to_group
from blockiot.chain.wire import (
    NO_SENDER,
    AddMember,
    Command,
    Proposal,
    Reading,
    TxKind,
    Vote,
    encode_sealable,
    compact_from_block,
    decode_block,
    decode_compact,
    decode_tx,
    encode_header,
    sign_join,
    sign_tx,
    tx_root,
    tx_signing_bytes,
)

CODEC = shipped_codec()  # made at the test's edge, as a node's wiring makes its own

VECTORS = tomllib.loads((Path(__file__).parents[1] / "vectors" / "chain.toml").read_text())


@pytest.fixture(scope="module")
def vec_identities() -> list[Identity]:
    return [Identity.from_seed(bytes.fromhex(m["seed"])) for m in VECTORS["genesis"]["member"]]


@pytest.fixture(scope="module")
def vec_genesis(vec_identities) -> Genesis:
    g = VECTORS["genesis"]
    members = tuple(
        Member(i, ident.public_key, m["role"], tuple(m["groups"]), m["name"])
        for i, (ident, m) in enumerate(zip(vec_identities, g["member"]))
    )
    params = Params(g["slot_seconds"], g["epoch_slots"], g["region"], g["preset"])
    return Genesis(g["name"], g["genesis_time"], params, members)


def test_public_keys_follow_from_seeds(vec_identities):
    assert [i.public_key.hex() for i in vec_identities] == [m["public_key"] for m in VECTORS["genesis"]["member"]]


def test_genesis_encoding_and_chain_id(vec_genesis):
    expect = VECTORS["genesis"]["expect"]
    assert vec_genesis.encoded.hex() == expect["encoded"]
    assert vec_genesis.chain_id.hex() == expect["chain_id"]
    assert decode_genesis(bytes.fromhex(expect["encoded"])) == vec_genesis


@pytest.mark.parametrize(
    "name, make_body",
    [
        ("reading_tx", lambda v: Reading(v["sensor"], v["value"])),
        ("command_tx", lambda v: Command(v["target"], v["action"], tuple(v["args"]))),
        ("proposal_tx", lambda v: Proposal(
            v["ttl"], AddMember(bytes.fromhex(v["key"]), v["role"], v["name"], tuple(v["groups"]), v["hardware"]))),
        ("vote_tx", lambda v: Vote(v["proposer"], v["proposal_nonce"])),
    ],
)
def test_tx_known_answer(vec_genesis, vec_identities, name, make_body):
    v = VECTORS[name]
    body = make_body(v)
    tx = sign_tx(vec_identities[v["signer"]], vec_genesis.chain_id, v["signer"], v["nonce"], body)
    assert tx.raw.hex() == v["hex"]
    assert tx.id.hex() == v["tx_id"]
    decoded = decode_tx(bytes.fromhex(v["hex"]))
    assert (decoded.sender, decoded.nonce, decoded.body) == (v["signer"], v["nonce"], body)
    assert decoded == tx
    signer_key = vec_genesis.members[v["signer"]].public_key
    assert verify(signer_key, tx_signing_bytes(vec_genesis.chain_id, decoded.signed_part), decoded.signature)


def test_join_request_known_answer(vec_genesis):
    v = VECTORS["join_request"]
    device = Identity.from_seed(bytes.fromhex(v["seed"]))
    assert device.public_key.hex() == VECTORS["proposal_tx"]["key"]
    tx = sign_join(device, vec_genesis.chain_id, v["name"], v["groups"], v["hardware"])
    assert tx.raw.hex() == v["hex"] and tx.id.hex() == v["tx_id"]
    decoded = decode_tx(bytes.fromhex(v["hex"]))
    assert (decoded.kind, decoded.sender, decoded.nonce) == (TxKind.JOIN_REQUEST, NO_SENDER, 0)
    assert decoded == tx and decoded.body.key == device.public_key
    assert verify(device.public_key, tx_signing_bytes(vec_genesis.chain_id, decoded.signed_part), decoded.signature)


def build_vector_block(genesis, identities, name: str, tx_names: tuple[str, ...]):
    """The ledger and applied block of vector `name`, built by its leader from the txs of
    vectors `tx_names`, checked against the vector's bytes, roots and id."""
    v = VECTORS[name]
    ledger = Ledger(genesis)
    assert ledger.leader_for_slot(v["slot"]) == v["leader"]
    raw_txs = [bytes.fromhex(VECTORS[t]["hex"]) for t in tx_names]
    applied = ledger.build_block(identities[v["leader"]], v["slot"], raw_txs)
    assert applied.block.raw.hex() == v["hex"]
    assert tx_root(applied.block.txs).hex() == v["tx_root"]
    assert applied.state_root.hex() == v["state_root"] and applied.id.hex() == v["block_id"]
    return ledger, applied


def test_block_known_answer(vec_genesis, vec_identities):
    v = VECTORS["block"]
    ledger, applied = build_vector_block(vec_genesis, vec_identities, "block", ("reading_tx", "command_tx"))
    assert encode_header(applied.block.header).hex() == v["header_hex"]
    assert compact_from_block(applied.block, vec_genesis.chain_id).hex() == v["compact_hex"]
    assert {table: rows for table, rows in ledger.state.tables.items() if rows} == {  # empty tables: no state
        "nonce": {(0,): (1,), (2,): (1,)},
        "reading": {(2, 1): (287, 1)},
        "command": {(3,): (0, 1, 1, 600)},
    }


def test_block_vector_applies_on_a_fresh_ledger(vec_genesis):
    v = VECTORS["block"]
    raw = bytes.fromhex(v["hex"])
    block = decode_block(raw)
    assert (block.header.height, block.header.slot) == (v["height"], v["slot"])
    assert block.header.parent_prefix == vec_genesis.chain_id[:8]
    applied = Ledger(vec_genesis).apply_block(raw)
    assert applied.id.hex() == v["block_id"]
    assert applied.state_root.hex() == v["state_root"]
    compact = decode_compact(bytes.fromhex(v["compact_hex"]))
    assert compact.header == block.header and len(compact.short_ids) == 2


def test_frame_and_crc_known_answer():
    v = VECTORS["frame"]
    assert crc32c(b"123456789") == v["crc32c_check"]
    frame = CODEC.pack(v["content"].encode())
    assert frame.hex() == v["hex"]
    assert CODEC.unpack(bytes.fromhex(v["hex"])) == v["content"].encode()


@pytest.fixture
def vec_keychains(vec_identities) -> list[Keychain]:
    return [Keychain(DeviceKey(identity), i) for i, identity in enumerate(vec_identities)]


def test_key_rotation_known_answer(vec_genesis, vec_identities, vec_keychains):
    v = VECTORS["rotation_tx"]
    chain_id, signer = vec_genesis.chain_id, v["signer"]
    state = Ledger(vec_genesis).state
    body = rotate(vec_keychains[signer], state, TxOrigin(chain_id, signer, v["nonce"]), v["group"],
                  bytes.fromhex(v["secret"]), 1)
    tx = sign_tx(vec_identities[signer], chain_id, signer, v["nonce"], body)
    assert tx.raw.hex() == v["hex"] and tx.id.hex() == v["tx_id"]
    decoded = decode_tx(bytes.fromhex(v["hex"]))
    assert (decoded.kind, decoded.sender, decoded.nonce) == (TxKind.KEY_ROTATION, signer, v["nonce"])
    rotation = decode_rotation(decoded.body.rotation)
    assert (rotation.group, rotation.epoch, list(rotation.recipients)) == (v["group"], v["epoch"], v["recipients"])
    assert verify(vec_genesis.members[signer].public_key, tx_signing_bytes(chain_id, decoded.signed_part),
                  decoded.signature)


def test_sealed_tx_known_answer(vec_genesis, vec_identities):
    rv, v = VECTORS["rotation_tx"], VECTORS["sealed_tx"]
    chain_id, signer = vec_genesis.chain_id, v["signer"]
    keys = Keychain(DeviceKey(vec_identities[signer]), signer)
    keys.accept(vec_identities[rv["signer"]].public_key, TxOrigin(chain_id, rv["signer"], rv["nonce"]),
                decode_rotation(decode_tx(bytes.fromhex(rv["hex"])).body.rotation))
    assert keys.keyring(0).current.secret.hex() == rv["secret"]  # the wrap to probe-1 unwraps to the key
    ledger = Ledger(vec_genesis)
    ledger.build_block(vec_identities[1], 1, [bytes.fromhex(rv["hex"])])
    reading = Reading(v["sensor"], v["value"])
    assert encode_sealable(reading).hex() == v["plaintext"]
    body = seal_to_group(keys, ledger.state, TxOrigin(chain_id, signer, v["nonce"]), reading, 2)
    tx = sign_tx(vec_identities[signer], chain_id, signer, v["nonce"], body)
    assert tx.raw.hex() == v["hex"] and tx.id.hex() == v["tx_id"]
    decoded = decode_tx(bytes.fromhex(v["hex"]))
    assert decoded == tx and decoded.kind == TxKind.SEALED
    env = decode_envelope(decoded.body.sealed)
    assert (env.target, env.epoch_tag, len(env.box)) == (0, 0, 16 + len(bytes.fromhex(v["plaintext"])))


def test_sealed_block_known_answer(vec_genesis, vec_identities, vec_keychains):
    """Built by a leader, applied by a node without any key: same bytes, same state root;
    every member opens the reading from the final block."""
    v = VECTORS["sealed_block"]
    ledger, applied = build_vector_block(vec_genesis, vec_identities, "sealed_block", ("rotation_tx", "sealed_tx"))
    assert {table: rows for table, rows in ledger.state.tables.items() if rows} == {
        "nonce": {(0,): (3,), (2,): (2,)},
        "group_key": {(0, 0): (1, 0, 3, 0, 1, 2, 3)},
    }
    keyless = Ledger(vec_genesis).apply_block(bytes.fromhex(v["hex"]))
    assert (keyless.id.hex(), keyless.state_root.hex()) == (v["block_id"], v["state_root"])
    sealed = VECTORS["sealed_tx"]
    for keys in vec_keychains:
        events = open_final_block(keys, ledger.state, applied.block)
        assert events == [KeyReceived(0, 0), Opened(bytes.fromhex(sealed["tx_id"]), sealed["signer"],
                                                    sealed["nonce"], 0, Reading(sealed["sensor"], sealed["value"]))]
