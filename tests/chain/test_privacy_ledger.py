"""Private payloads on the ledger and on key holders (chain/privacy/onchain.py, holder.py):
sealed readings finalized and opened, what every node refuses without keys (wrong epoch,
non-member recipients, revoked keys, rotations by the wrong member or to the wrong
recipients), the lockout of a removed member after the rotation that follows its removal,
keychains rebuilt from the chain, and the same state root with and without keys.

The clusters are test_governance.Gov's (validators 0-3 in group "core" = 1, members 4-5 in
"field" = 2); every member holds a keychain and opens each block the way the runtime opens
a final block."""
from __future__ import annotations

import hashlib
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from construct import VarInt

from blockiot.chain import governance as gov
from blockiot.chain.contracts import compile_rule
from blockiot.chain.crypto import Identity
from blockiot.chain.consensus.finalized import MemoryChain
from blockiot.chain.errors import DecodeError, EncodeError, InvalidBlock
from blockiot.chain.ledger import AppliedBlock, Ledger
from blockiot.chain.privacy import (
    MAC_LEN,
    DeviceKey,
    Envelope,
    GroupKey,
    GroupKeyring,
    Keychain,
    PrivacyError,
    TxOrigin,
    encode_envelope,
    encode_rotation,
    decode_envelope,
    rotate_group_key,
)
from blockiot.chain.privacy.holder import (
    KeyReceived,
    NotOpened,
    Opened,
    open_final_block,
    rebuild_keychain,
    rotate,
    seal_to_group,
    seal_to_member,
)
from blockiot.chain.privacy.onchain import (
    CLUSTER,
    ROTATION_GRACE_SLOTS,
    ROTATOR_TURN_SLOTS,
    current_epoch,
    group_names,
    group_number,
    key_holders,
    rotator,
    rotations_due,
)
from blockiot.chain.store import ChainStore, StoredChain
from blockiot.chain.wire import (
    MAX_DATA_BYTES,
    MAX_NONCE,
    MAX_SEALED_BYTES,
    MAX_TX_BYTES_BY_KIND,
    MAX_VARINT,
    AddMember,
    Command,
    ContractDeploy,
    Data,
    Reading,
    RemoveMember,
    RotateKey,
    Sealed,
    Sensor,
    TxKind,
    decode_block,
    decode_sealable,
    decode_tx,
    encode_sealable,
    sign_tx,
)
from blockiot.radio.linkframe import SINGLE_HEADER_LEN, SingleFrame, encode
from test_governance import Gov, _pass
from test_ledger import forge_block

CORE, FIELD = 1, 2  # group numbers: the registry's group names in order of appearance
SOIL = Reading(Sensor.MOISTURE, 287)
# A rule that would command device 0 on any sealed tx or rotation, and each reading's sender.
WATCHER = compile_rule(
    "with transaction(sealed) as t:\n    command(device(0), notify, 9)\n"
    "with transaction(key_rotation) as t:\n    command(device(0), notify, 10)\n"
    "with transaction(reading) as t:\n    command(t.device, notify, 1)\n"
).bytecode


class Private(Gov):
    """A Gov cluster whose members hold keychains and open every block applied."""

    def __init__(self, validators: int = 4, members: int = 2, epoch_slots: int = 8, store=None):
        super().__init__(validators, members, epoch_slots, store)
        self.keys = [Keychain(DeviceKey(identity), i) for i, identity in enumerate(self.identities)]
        self.events: list[list[tuple[int, object]]] = [[] for _ in self.keys]  # (slot, event) per member
        self._secrets = count(1)

    def next_slot(self) -> int:
        return self.ledger.head.slot + 1

    def origin(self, member: int) -> TxOrigin:
        """The tx `member` signs next (Gov.tx takes the same nonce)."""
        return TxOrigin(self.genesis.chain_id, member, self.nonces.get(member, 0) + 1)

    def seal(self, member: int, body=SOIL, group: int = CLUSTER, to: int | None = None) -> bytes:
        origin, slot = self.origin(member), self.next_slot()
        if to is None:
            return self.tx(member, seal_to_group(self.keys[member], self.state, origin, body, slot, group))
        return self.tx(member, seal_to_member(self.keys[member], self.state, origin, body, slot, to))

    def rotate(self, member: int, group: int = CLUSTER) -> bytes:
        secret = hashlib.blake2b(bytes([next(self._secrets)]), digest_size=32).digest()  # os.urandom(32) on a node
        return self.tx(member, rotate(self.keys[member], self.state, self.origin(member), group, secret,
                                      self.next_slot()))

    def block(self, *raw_txs: bytes, slot: int | None = None) -> AppliedBlock:
        applied = super().block(*raw_txs, slot=slot)
        for keys, events in zip(self.keys, self.events):
            events += [(applied.block.header.slot, e) for e in open_final_block(keys, self.state, applied.block)]
        return applied

    def first_keys(self) -> None:
        """Each group's first key, by its rotator (validator 0 for the cluster and core,
        member 4 for field, which has no validator)."""
        slot = self.next_slot()
        assert rotations_due(self.state, 0, slot) == (CLUSTER, CORE) and rotations_due(self.state, 4, slot) == (FIELD,)
        raws = (self.rotate(0, CLUSTER), self.rotate(0, CORE), self.rotate(4, FIELD))
        assert self.block(*raws).block.txs == raws

    def opened(self, member: int, from_slot: int = 0) -> list[Opened]:
        return [e for slot, e in self.events[member] if isinstance(e, Opened) and slot >= from_slot]

    def follower(self) -> Ledger:
        """Another node, without keys, that applied every block so far."""
        ledger = Ledger(self.genesis)
        for raw in self.history:
            ledger.apply_block(raw)
        return ledger

    def refused_everywhere(self, raw: bytes, reason: str) -> None:
        """The leader leaves `raw` out of its block; a block holding it is invalid elsewhere."""
        assert self.refusal(raw) == reason
        follower, slot = self.follower(), self.next_slot()
        forged = forge_block(follower, self.identities[follower.leader_for_slot(slot)], slot, [raw])
        with pytest.raises(InvalidBlock, match=reason):
            follower.apply_block(forged)
        assert self.block(raw).block.txs == ()


def _retag(raw_sealed: bytes, epoch_tag: int) -> bytes:
    env = decode_envelope(raw_sealed)
    return encode_envelope(Envelope(env.scope, env.target, epoch_tag, env.box))


# --- sealed readings, finalized and opened -------------------------------------------------------


def test_groups_are_numbered_by_first_appearance_in_the_registry():
    cluster = Private()
    assert group_names(cluster.state) == ("core", "field")
    assert (group_number(cluster.state, "core"), group_number(cluster.state, "field")) == (CORE, FIELD)
    assert group_number(cluster.state, "nowhere") is None
    assert key_holders(cluster.state, CLUSTER) == (0, 1, 2, 3, 4, 5)
    assert key_holders(cluster.state, FIELD) == (4, 5)


def test_a_sealed_reading_to_the_cluster_is_opened_by_every_member_once_final():
    cluster = Private()
    root = cluster.state.state_root()
    cluster.first_keys()
    assert {current_epoch(cluster.state, g) for g in (CLUSTER, CORE, FIELD)} == {0}
    assert [e for _slot, e in cluster.events[5]] == [KeyReceived(CLUSTER, 0), NotOpened(
        *_head(cluster.history[-1], 1), "not-recipient",
        "member 5 is not among the recipients of group 1's key epoch 0"), KeyReceived(FIELD, 0)]
    assert cluster.state.state_root() != root  # the key epochs are state; no key is
    raw = cluster.seal(4, SOIL)
    applied = cluster.block(raw)
    assert applied.block.txs == (raw,)
    tx = decode_tx(raw)
    for member in range(6):
        assert cluster.opened(member) == [Opened(tx.id, 4, tx.nonce, CLUSTER, SOIL)]
    assert cluster.state.get("reading", (4, Sensor.MOISTURE)) is None  # the ledger holds ciphertext only
    assert cluster.follower().state.state_root() == applied.state_root


def test_a_payload_sealed_to_one_member_is_opened_by_it_alone():
    cluster = Private()
    command = Command(5, 1, (600,))
    raw = cluster.seal(0, command, to=5)
    assert cluster.block(raw).block.txs == (raw,)  # no group key needed
    assert [e.body for e in cluster.opened(5)] == [command]
    for member in range(5):
        (event,) = [e for _slot, e in cluster.events[member]]
        assert event.reason == "not-recipient" and cluster.opened(member) == []


def test_tampered_ciphertext_is_refused_by_key_holders_and_nothing_follows():
    cluster = Private()
    cluster.first_keys()
    origin = cluster.origin(4)
    good = seal_to_group(cluster.keys[4], cluster.state, origin, SOIL, cluster.next_slot())
    bad = Sealed(good.sealed[:-1] + bytes([good.sealed[-1] ^ 0x01]))
    raw = cluster.tx(4, bad)  # signed by its sender: only a key holder can tell
    applied = cluster.block(raw)
    assert applied.block.txs == (raw,)
    assert set(applied.diff.changes) == {("nonce", (4,))}  # nothing but the nonce moves
    for member in range(6):
        (event,) = [e for slot, e in cluster.events[member] if slot == applied.block.header.slot]
        assert isinstance(event, NotOpened) and event.reason == "tampered"
        assert "fails authentication: altered" in event.detail and event.sender == 4


def test_an_authentic_payload_that_is_no_body_is_malformed_for_its_holders():
    cluster = Private()
    cluster.first_keys()
    origin = cluster.origin(4)
    raw = cluster.tx(4, Sealed(cluster.keys[4].keyring(CLUSTER).seal(origin, b"\x07junk")))
    cluster.block(raw)
    assert {e.reason for _slot, e in cluster.events[0][-1:]} == {"malformed"}


# --- what every node refuses without keys --------------------------------------------------------


def test_a_wrong_key_epoch_is_refused_by_every_node():
    cluster = Private()
    cluster.first_keys()
    valid = seal_to_group(cluster.keys[4], cluster.state, cluster.origin(4), SOIL, cluster.next_slot())
    ahead = cluster.tx(4, Sealed(_retag(valid.sealed, 1)))  # no epoch 1 yet
    cluster.refused_everywhere(ahead, "wrong-epoch")
    with pytest.raises(gov.Refused, match="wrong-epoch: key epoch tag 1 is not usable in group 0"):
        cluster.state.apply_tx(decode_tx(ahead), cluster.next_slot())


def test_a_rotation_that_removed_nobody_leaves_the_previous_epoch_usable_for_a_grace():
    cluster = Private()
    cluster.first_keys()
    old = cluster.keys[1].keyring(CLUSTER).current
    joiner = Identity.from_seed(b"\x77" * 32)
    pid = _pass(cluster, AddMember(joiner.public_key, 0, "probe-9", ("field",)))
    switch = gov.proposal(cluster.state, *pid).slot
    assert key_holders(cluster.state, CLUSTER) == (0, 1, 2, 3, 4, 5, 6)  # before it is in force
    assert rotator(cluster.state, CLUSTER, cluster.next_slot()) == 0
    rotation = cluster.rotate(0)
    assert cluster.block(rotation).block.txs == (rotation,)
    rotated_at = cluster.ledger.head.slot
    assert rotated_at < switch and current_epoch(cluster.state, CLUSTER) == 1

    def sealed_under_old_key():
        ring = GroupKeyring(CLUSTER)
        ring.add(old)
        return cluster.tx(1, Sealed(ring.seal(cluster.origin(1), encode_sealable(SOIL))))

    late = sealed_under_old_key()
    assert cluster.refusal(late, slot=rotated_at + ROTATION_GRACE_SLOTS - 1) is None
    cluster.until(rotated_at + ROTATION_GRACE_SLOTS - 1)
    cluster.refused_everywhere(sealed_under_old_key(), "wrong-epoch")
    # the new member's node starts: it holds the key wrapped to it, none sealed before it joined
    rebuilt, events = rebuild_keychain(joiner, 6, cluster.state, MemoryChain(_numbered(cluster.history)))
    assert events == [KeyReceived(CLUSTER, 1)] and rebuilt.keyring(CLUSTER).epochs == (1,)


def test_payloads_to_non_members_outside_groups_or_without_keys_are_refused():
    cluster = Private()
    cluster.refused_everywhere(_raw_group_seal(cluster, 4, CLUSTER), "no-group-key")
    cluster.first_keys()
    to_five = decode_envelope(seal_to_member(cluster.keys[4], cluster.state, cluster.origin(4), SOIL, 1, 5).sealed)
    to_nobody = Envelope(to_five.scope, 9, None, to_five.box)  # registry index 9: no member
    cluster.refused_everywhere(cluster.tx(4, Sealed(encode_envelope(to_nobody))), "recipient-not-member")
    with pytest.raises(gov.Refused, match="recipient-not-member: no member 9"):
        seal_to_member(cluster.keys[4], cluster.state, cluster.origin(4), SOIL, cluster.next_slot(), 9)
    with pytest.raises(PrivacyError, match="no key held for group 1"):  # a field member holds no core key
        seal_to_group(cluster.keys[4], cluster.state, cluster.origin(4), SOIL, cluster.next_slot(), CORE)
    cluster.refused_everywhere(_raw_group_seal(cluster, 4, CORE), "not-in-group")
    cluster.refused_everywhere(_raw_group_seal(cluster, 4, 3), "unknown-group")


def test_a_removed_member_is_locked_out_of_everything_sealed_after_its_removal():
    cluster = Private()
    cluster.first_keys()
    before = (cluster.seal(4, SOIL), cluster.seal(4, SOIL, FIELD))
    cluster.block(*before)
    assert len(cluster.opened(5)) == 2  # a member reads what its groups get
    pid = _pass(cluster, RemoveMember(5))
    switch = gov.proposal(cluster.state, *pid).slot
    slot = cluster.next_slot()
    assert slot < switch and key_holders(cluster.state, CLUSTER) == (0, 1, 2, 3, 4)
    assert rotations_due(cluster.state, 0, slot) == (CLUSTER,) and rotations_due(cluster.state, 4, slot) == (FIELD,)
    rotations = (cluster.rotate(0, CLUSTER), cluster.rotate(4, FIELD))
    assert cluster.block(*rotations).block.txs == rotations  # before the removal takes effect
    rotated_at = cluster.ledger.head.slot
    assert [e for slot, e in cluster.events[5] if slot == rotated_at] == [
        NotOpened(*_head(rotations[0]), "not-recipient", "member 5 is not among the recipients of group 0's key "
                  "epoch 1"),
        NotOpened(*_head(rotations[1]), "not-recipient", "member 5 is not among the recipients of group 2's key "
                  "epoch 1"),
    ]
    sent = 0
    while cluster.ledger.head.slot < switch + 3:
        raws = (cluster.seal(1, SOIL), cluster.seal(4, Reading(Sensor.TEMPERATURE, 2150), FIELD),
                cluster.seal(0, Data(b"private"), to=4))
        assert cluster.block(*raws).block.txs == raws
        sent += 1
    removed_member_decrypted_after_removal = len(cluster.opened(5, from_slot=switch))
    assert removed_member_decrypted_after_removal == 0 and sent >= 3
    assert cluster.opened(5, from_slot=rotated_at) == []  # nor after the rotation, before the switch
    assert {e.reason for slot, e in cluster.events[5] if slot > rotated_at} == {"wrong-epoch", "not-recipient"}
    assert len(cluster.opened(0, from_slot=rotated_at + 1)) == sent  # the group's
    assert len(cluster.opened(4, from_slot=rotated_at + 1)) == 3 * sent  # the group's, field's and its own
    old_ring = cluster.keys[5].keyring(CLUSTER)
    assert old_ring.epochs == (0,)  # what it read before stays readable to it, nothing after
    late = cluster.tx(5, Sealed(old_ring.seal(cluster.origin(5), encode_sealable(SOIL))))
    assert cluster.refusal(late) == "removed"
    with pytest.raises(gov.Refused, match="recipient-not-member"):
        seal_to_member(cluster.keys[0], cluster.state, cluster.origin(0), SOIL, cluster.next_slot(), 5)


def test_until_the_rotation_after_a_removal_nothing_is_sealed_under_the_revoked_key():
    cluster = Private()
    cluster.first_keys()
    pid = _pass(cluster, RemoveMember(5))
    switch = gov.proposal(cluster.state, *pid).slot
    cluster.until(switch - 1)  # nobody rotates before the removal takes effect
    assert cluster.refusal(_raw_group_seal(cluster, 1, CLUSTER), slot=switch - 1) is None
    cluster.refused_everywhere(_raw_group_seal(cluster, 1, CLUSTER), "key-revoked")
    with pytest.raises(gov.Refused, match="key-revoked: group 0's key epoch 0 is held by removed member"):
        seal_to_group(cluster.keys[1], cluster.state, cluster.origin(1), SOIL, cluster.next_slot())
    # validator 0's turn ends ROTATOR_TURN_SLOTS after the switch slot; then validator 1's
    turn_over = switch + ROTATOR_TURN_SLOTS
    assert rotator(cluster.state, CLUSTER, turn_over - 1) == 0 and rotator(cluster.state, CLUSTER, turn_over) == 1
    late = cluster.rotate(0)
    assert cluster.refusal(late, slot=turn_over) == "not-rotator"
    cluster.until(turn_over - 1)
    rotation = cluster.rotate(1)
    assert cluster.block(rotation).block.txs == (rotation,)
    raw = cluster.seal(4)
    assert cluster.block(raw).block.txs == (raw,)
    assert [e.body for e in cluster.opened(0, from_slot=turn_over)] == [SOIL]
    assert cluster.opened(5, from_slot=switch) == []


def test_rotations_by_the_wrong_member_to_the_wrong_recipients_or_epoch_are_refused():
    cluster = Private()
    slot = cluster.next_slot()
    holders = {m: cluster.identities[m].public_key for m in range(6)}

    def rotation(sender: int, group: int = CLUSTER, epoch: int = 0, recipients=None) -> bytes:
        _key, body = rotate_group_key(cluster.keys[sender].device, cluster.origin(sender), group, epoch,
                                      bytes(32), holders if recipients is None else recipients)
        return cluster.tx(sender, RotateKey(encode_rotation(body)))

    assert rotator(cluster.state, CLUSTER, slot) == 0
    cluster.refused_everywhere(rotation(1), "not-rotator")
    cluster.refused_everywhere(rotation(4), "not-rotator")
    cluster.refused_everywhere(rotation(0, epoch=1), "wrong-epoch")
    cluster.refused_everywhere(rotation(0, recipients={m: holders[m] for m in range(5)}), "wrong-recipients")
    cluster.refused_everywhere(rotation(0, group=3), "unknown-group")
    with pytest.raises(gov.Refused, match="not-rotator"):
        rotate(cluster.keys[1], cluster.state, cluster.origin(1), CLUSTER, bytes(32), cluster.next_slot())
    first = rotation(0)
    assert cluster.block(first).block.txs == (first,)
    cluster.refused_everywhere(rotation(0, epoch=1), "rotation-not-due")
    assert rotations_due(cluster.state, 0, cluster.next_slot()) == (CORE,)


# --- keys at start, keys never stored -----------------------------------------------------------


def test_a_keychain_is_rebuilt_from_the_final_chain_at_start(tmp_path):
    store = ChainStore(tmp_path)
    cluster = Private(store=store)
    cluster.first_keys()
    pid = _pass(cluster, RemoveMember(5))
    cluster.block(cluster.rotate(0, CLUSTER))
    cluster.until(gov.proposal(cluster.state, *pid).slot)
    after = cluster.seal(4)
    cluster.block(after)
    for member, identity in enumerate(cluster.identities):
        live = cluster.keys[member]
        for source in (StoredChain(store), MemoryChain(_numbered(cluster.history))):
            for keep in (1, 4):
                keys, events = rebuild_keychain(identity, member, cluster.state, source, keep)
                assert all(isinstance(e, KeyReceived) for e in events)
                for group in (CLUSTER, CORE, FIELD):
                    assert keys.keyring(group).epochs == live.keyring(group).epochs[-keep:]
                    assert keys.keyring(group).current == live.keyring(group).current
        rebuilt = rebuild_keychain(identity, member, cluster.state, StoredChain(store))[0]
        (event,) = open_final_block(rebuilt, cluster.state, decode_block(cluster.history[-1]))
        assert event.tx_id == decode_tx(after).id
        assert (event.reason if member == 5 else event.body) == ("wrong-epoch" if member == 5 else SOIL)
    store.close()
    secrets = {k.secret for keys in cluster.keys for g in (CLUSTER, CORE, FIELD)
               for k in [keys.keyring(g).current] if k is not None}
    assert len(secrets) == 4
    db = (tmp_path / "chain.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("chain.db-*"))
    assert not any(secret in db for secret in secrets)  # no key is ever stored in clear


def test_events_and_reprs_never_show_a_key():
    cluster = Private()
    cluster.first_keys()
    cluster.block(cluster.seal(4))
    secret = cluster.keys[0].keyring(CLUSTER).current.secret
    texts = [repr(e) for events in cluster.events for _slot, e in events] + [repr(k) for k in cluster.keys]
    assert texts and not any(secret.hex() in t or repr(secret)[2:-1] in t for t in texts)


# --- rules and the state root -------------------------------------------------------------------


def test_sealed_payloads_and_rotations_trigger_no_rule():
    cluster = Private()
    deploy = cluster.tx(0, ContractDeploy(WATCHER))
    cluster.block(deploy)
    cluster.first_keys()
    cluster.block(cluster.seal(4), cluster.seal(1, to=3))
    assert cluster.state.tables["contract_command"] == {}
    cluster.block(cluster.tx(4, SOIL))  # the same rule fires on a reading in clear
    assert set(cluster.state.tables["contract_command"]) == {(4,)}


_steps = st.lists(
    st.tuples(st.sampled_from(["clear", "group", "own-group", "device", "tampered", "wrong-epoch"]),
              st.integers(0, 5), st.integers(0, 5)),
    min_size=1, max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps)
def test_the_same_blocks_give_the_same_state_root_with_or_without_keys(steps):
    """Ledger A's leader builds blocks and its members open them with their keys; ledger B,
    with no key anywhere, applies the same blocks: same root after every block, and no rule
    fires on a sealed payload."""
    cluster = Private()
    keyless = Ledger(cluster.genesis)
    cluster.block(cluster.tx(0, ContractDeploy(WATCHER)))
    cluster.first_keys()
    for raw in cluster.history:
        keyless.apply_block(raw)
    for kind, member, other in steps:
        own = CORE if member < 4 else FIELD
        if kind == "clear":
            raw = cluster.tx(member, Reading(Sensor.MOISTURE, other))
        elif kind == "group":
            raw = cluster.seal(member, Reading(Sensor.MOISTURE, other))
        elif kind == "own-group":
            raw = cluster.seal(member, Data(bytes([other])), own)
        elif kind == "device":
            raw = cluster.seal(member, Command(other, 2), to=other)
        else:
            sealed = cluster.keys[member].keyring(CLUSTER).seal(cluster.origin(member), encode_sealable(SOIL))
            bad = sealed[:-1] + bytes([sealed[-1] ^ 1]) if kind == "tampered" else _retag(sealed, 9)
            raw = cluster.tx(member, Sealed(bad))
        applied = cluster.block(raw)
        assert applied.block.txs == (() if kind == "wrong-epoch" else (raw,))
        assert keyless.apply_block(applied.block.raw).state_root == applied.state_root
    commands = cluster.state.tables["contract_command"]
    assert len(commands) == len({member for kind, member, _other in steps if kind == "clear"})
    assert all(row[4] == 1 for row in commands.values())  # only the reading rule ever fired
    assert len(cluster.opened(0)) == sum(kind == "group" or (kind == "own-group" and member < 4) or
                                         (kind == "device" and other == 0) for kind, member, other in steps)


# --- wire: sizes and decoding --------------------------------------------------------------------


def test_an_encrypted_soil_reading_on_chain_is_93_bytes_on_air():
    """docs/PRIVACY.md §3: member 2's moisture reading in its tx 1000, sealed to the cluster,
    accepted by the ledger, in one link frame."""
    cluster = Private()
    cluster.first_keys()
    cluster.nonces[2] = 999  # a device in its thousandth tx: a 2-byte nonce
    raw = cluster.seal(2)
    assert cluster.block(raw).block.txs == (raw,)
    on_air = encode(SingleFrame(1, raw))
    assert len(raw) == 1 + 1 + 2 + 1 + 1 + 1 + MAC_LEN + len(encode_sealable(SOIL)) + 64 == 91
    assert len(on_air) == SINGLE_HEADER_LEN + 91 == 93 <= 96


def test_sealable_bodies_round_trip_and_others_are_refused():
    for body in (SOIL, Command(3, 1, (600, -5)), Data(bytes(MAX_DATA_BYTES))):
        assert decode_sealable(encode_sealable(body)) == body
    with pytest.raises(EncodeError, match="cannot be sealed"):
        encode_sealable(Sealed(b""))
    for raw, reason in ((b"", "kind None"), (b"\x09", "kind 9"), (b"\x01\x01", "malformed sealed body"),
                        (b"\x01\x01\xbe\x04\x00", "malformed sealed body"), (b"\x01\x63\x00", "unknown sensor")):
        with pytest.raises(DecodeError, match=reason):
            decode_sealable(raw)


def test_the_largest_sealed_payload_fits_its_kinds_bound():
    keys = Keychain(DeviceKey(Identity.from_seed(b"\x01" * 32)), 0)
    ring = keys.keyring(2**62 - 1)
    ring.add(GroupKey(2**62 - 1, 5, bytes(32)))
    origin = TxOrigin(bytes(32), MAX_VARINT, MAX_NONCE)
    sealed = ring.seal(origin, encode_sealable(Data(bytes(MAX_DATA_BYTES))))
    assert len(sealed) == 189 <= MAX_SEALED_BYTES
    signer = Identity.from_seed(b"\x01" * 32)
    tx = sign_tx(signer, bytes(32), MAX_VARINT, MAX_NONCE, Sealed(sealed))
    assert len(tx.raw) == 274 and decode_tx(tx.raw) == tx
    padded = sealed + bytes(MAX_SEALED_BYTES - len(sealed))  # the bound: 277 B with the largest head
    tx = sign_tx(signer, bytes(32), MAX_VARINT, MAX_NONCE, Sealed(padded))
    assert len(tx.raw) == 277 <= MAX_TX_BYTES_BY_KIND[TxKind.SEALED] and decode_tx(tx.raw) == tx


@pytest.mark.parametrize(
    "body, reason",
    [
        (Sealed(b"\x00"), "malformed sealed payload"),
        (Sealed(b"\x00\x00" + bytes(15)), "shorter than its 16-byte MAC"),
        (Sealed(bytes(MAX_SEALED_BYTES + 1)), f"exceeds {MAX_SEALED_BYTES} B"),
        (RotateKey(b"\x00\x00"), "malformed key rotation"),
        (RotateKey(b"\x01" + bytes(34) + b"\x01\x00" + bytes(32)), "unsupported key rotation version 1"),
    ],
)
def test_malformed_private_bodies_are_neither_encoded_nor_decoded(body, reason):
    signer = Identity.from_seed(b"\x01" * 32)
    with pytest.raises(EncodeError, match=reason):
        sign_tx(signer, bytes(32), 1, 1, body)
    kind, inner = (TxKind.SEALED, body.sealed) if isinstance(body, Sealed) else (TxKind.KEY_ROTATION, body.rotation)
    forged = bytes([kind, 1, 1]) + VarInt.build(len(inner)) + inner + bytes(64)  # head, body, signature
    with pytest.raises(DecodeError, match=reason):
        decode_tx(forged)


def _raw_group_seal(cluster: Private, member: int, group: int) -> bytes:
    """A tx of `member` sealed to `group` under an epoch-0 key the ledger cannot check."""
    ring = GroupKeyring(group)
    ring.add(GroupKey(group, 0, bytes(32)))
    return cluster.tx(member, Sealed(ring.seal(cluster.origin(member), encode_sealable(SOIL))))


def _head(raw: bytes, index: int | None = None) -> tuple[bytes, int, int]:
    """(tx id, sender, nonce) of a raw tx, or of tx `index` of a raw block."""
    tx = decode_tx(raw if index is None else decode_block(raw).txs[index])
    return tx.id, tx.sender, tx.nonce


def _numbered(raw_blocks: list[bytes]):
    """(height, id, raw) as `MemoryChain` takes them (ids unused here)."""
    return ((height, b"", raw) for height, raw in enumerate(raw_blocks, start=1))
