"""Private payloads (blockiot.chain.privacy): sealing to a device and to a group, key
rotation, the keyring's epochs, typed rejections, known-answer vectors and the size on
air of an encrypted soil reading."""
from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import Box, PrivateKey, PublicKey
from nacl.secret import SecretBox

from blockiot.chain.crypto import SIGNATURE_LEN, Identity
from blockiot.chain.errors import ChainError, DecodeError, EncodeError
from blockiot.chain.privacy import (
    MAC_LEN,
    DecryptError,
    DeviceKey,
    Envelope,
    GroupKey,
    GroupKeyring,
    Keychain,
    KeyRotation,
    NotRecipient,
    PrivacyDecodeError,
    PrivacyEncodeError,
    PrivacyError,
    Purpose,
    Scope,
    TamperedCiphertext,
    TxOrigin,
    WrappedKey,
    WrongEpoch,
    decode_envelope,
    decode_rotation,
    derive_nonce,
    encode_envelope,
    encode_rotation,
    open_from_device,
    open_rotation,
    rotate_group_key,
    seal_to_device,
    x25519_public_key,
)
from blockiot.chain.wire import TX_BODIES, Reading, Sealed, Sensor, TxKind, encode_sealable, sign_tx
from blockiot.radio.linkframe import SINGLE_HEADER_LEN, SingleFrame, encode

SEEDS = tuple(bytes([i + 1]) * 32 for i in range(4))  # members 0..3
CHAIN_ID = bytes(range(32))
SECRET = bytes(range(32, 64))  # a group key; in a node, 32 bytes from os.urandom
SOIL = Reading(Sensor.MOISTURE, 287)  # 28.7 %
SOIL_BODY = TX_BODIES[TxKind.READING][0].build(dict(sensor=SOIL.sensor, value=SOIL.value))
SOIL_PLAIN = bytes([TxKind.READING]) + SOIL_BODY  # what a sealed reading hides: its kind and body
ORIGIN = TxOrigin(CHAIN_ID, 2, 1000)  # member 2's tx with nonce 1000
ROTATION_HEAD = bytes(3 + 32)  # an encoded rotation up to its recipients: version, group, epoch 0, commitment

payloads = st.binary(max_size=200)
origins = st.builds(TxOrigin, st.just(CHAIN_ID), st.integers(0, 2**63 - 1), st.integers(1, 2**63 - 1))


@pytest.fixture(scope="module")
def ids() -> list[Identity]:
    return [Identity.from_seed(seed) for seed in SEEDS]


@pytest.fixture(scope="module")
def devices(ids) -> list[DeviceKey]:
    return [DeviceKey(identity) for identity in ids]


def keychains(devices, ids, members, epoch=0, secret=SECRET, rotator=0, nonce=1):
    """A keychain per member of the cluster, `members` holding group 0's key at `epoch`."""
    origin = TxOrigin(CHAIN_ID, rotator, nonce)
    _, rotation = rotate_group_key(
        devices[rotator], origin, 0, epoch, secret, {m: ids[m].public_key for m in members}
    )
    chains = [Keychain(device, i) for i, device in enumerate(devices)]
    for m in members:
        chains[m].accept(ids[rotator].public_key, origin, decode_rotation(encode_rotation(rotation)))
    return chains


def keyring(*epochs: int, keep: int = 4) -> GroupKeyring:
    ring = GroupKeyring(0, keep)
    for epoch in epochs:
        ring.add(GroupKey(0, epoch, bytes([epoch % 251]) * 32))
    return ring


# --- round trips -------------------------------------------------------------------------


def test_device_round_trip(devices, ids):
    sealed = seal_to_device(devices[2], 3, ids[3].public_key, ORIGIN, SOIL_PLAIN)
    assert len(sealed) == 1 + MAC_LEN + len(SOIL_PLAIN)
    assert decode_envelope(sealed) == Envelope(Scope.DEVICE, 3, None, sealed[1:])
    assert open_from_device(devices[3], 3, ids[2].public_key, ORIGIN, sealed) == SOIL_PLAIN


def test_group_round_trip_on_every_member(devices, ids):
    chains = keychains(devices, ids, range(4), epoch=7)
    sealed = chains[2].keyring(0).seal(ORIGIN, SOIL_PLAIN)
    assert len(sealed) == 2 + MAC_LEN + len(SOIL_PLAIN)
    assert decode_envelope(sealed) == Envelope(Scope.GROUP, 0, 7, sealed[2:])
    assert {chain.open(ids[2].public_key, ORIGIN, sealed) for chain in chains} == {SOIL_PLAIN}


@settings(max_examples=60, deadline=None)
@given(plaintext=payloads, origin=origins, group=st.integers(0, 2**62 - 1), epoch=st.integers(0, 2**62 - 1))
def test_group_round_trip_property(plaintext, origin, group, epoch):
    ring = GroupKeyring(group)
    ring.add(GroupKey(group, epoch, SECRET))
    sealed = ring.seal(origin, plaintext)
    assert ring.open(origin, sealed) == plaintext
    assert sealed.endswith(SecretBox(SECRET).encrypt(plaintext, derive_nonce(origin, Purpose.GROUP)).ciphertext)


@settings(max_examples=40, deadline=None)
@given(plaintext=payloads, origin=origins, recipient=st.integers(0, 2**62 - 1))
def test_device_round_trip_property(devices, ids, plaintext, origin, recipient):
    sealed = seal_to_device(devices[0], recipient, ids[1].public_key, origin, plaintext)
    assert open_from_device(devices[1], recipient, ids[0].public_key, origin, sealed) == plaintext


# --- rejections --------------------------------------------------------------------------


def test_every_flipped_box_byte_is_tampered(devices, ids):
    chains = keychains(devices, ids, range(4))
    for sealed, header in (
        (chains[2].keyring(0).seal(ORIGIN, SOIL_PLAIN), 2),
        (seal_to_device(devices[2], 3, ids[3].public_key, ORIGIN, SOIL_PLAIN), 1),
    ):
        for i in range(header, len(sealed)):
            bad = sealed[:i] + bytes([sealed[i] ^ 0x01]) + sealed[i + 1:]
            with pytest.raises(TamperedCiphertext, match="fails authentication: altered"):
                chains[3].open(ids[2].public_key, ORIGIN, bad)


@pytest.mark.parametrize("origin", [TxOrigin(CHAIN_ID, 2, 1001), TxOrigin(CHAIN_ID, 1, 1000),
                                    TxOrigin(bytes(32), 2, 1000)])
def test_replayed_into_another_tx_is_tampered(devices, ids, origin):
    """A sealed payload copied into another tx (nonce, sender or chain) does not open."""
    chains = keychains(devices, ids, range(4))
    for sealed in (chains[2].keyring(0).seal(ORIGIN, SOIL_PLAIN),
                   seal_to_device(devices[2], 3, ids[3].public_key, ORIGIN, SOIL_PLAIN)):
        with pytest.raises(TamperedCiphertext):
            chains[3].open(ids[2].public_key, origin, sealed)


def test_wrong_epoch_is_rejected_with_the_epochs_held():
    sealed = keyring(5).seal(ORIGIN, SOIL_PLAIN)
    with pytest.raises(WrongEpoch, match=r"key epoch 5 \(mod 256\) of group 0; epochs held here: 3, 4"):
        keyring(3, 4).open(ORIGIN, sealed)
    flipped = sealed[:1] + bytes([4]) + sealed[2:]  # an epoch byte changed on the way
    with pytest.raises(TamperedCiphertext):
        keyring(4, 5).open(ORIGIN, flipped)


def test_keyring_keeps_the_newest_epochs_only():
    ring = keyring(0, 1, keep=2)
    old = ring.seal(ORIGIN, b"epoch 1")
    ring.add(GroupKey(0, 2, bytes([2]) * 32))
    assert ring.epochs == (1, 2) and ring.current.epoch == 2
    assert ring.open(ORIGIN, old) == b"epoch 1"
    ring.add(GroupKey(0, 3, bytes([3]) * 32))
    assert ring.epochs == (2, 3)
    with pytest.raises(WrongEpoch):
        ring.open(ORIGIN, old)
    ring.add(GroupKey(0, 0, bytes([0]) * 32))  # older than the window: not kept
    assert ring.epochs == (2, 3)


def test_keyring_epoch_tags_wrap_at_256():
    ring = keyring(3, 259)  # both travel as epoch byte 3: the newer wins
    assert ring.epochs == (259,)
    assert ring.open(ORIGIN, keyring(259).seal(ORIGIN, b"x")) == b"x"
    with pytest.raises(TamperedCiphertext):
        ring.open(ORIGIN, keyring(3).seal(ORIGIN, b"x"))


def test_keyring_refuses_misuse():
    with pytest.raises(PrivacyError, match="already held"):
        keyring(1).add(GroupKey(0, 1, bytes([9]) * 32))
    with pytest.raises(PrivacyError, match="does not belong"):
        keyring(1).add(GroupKey(1, 2, SECRET))
    with pytest.raises(PrivacyError, match="no key held"):
        GroupKeyring(0).seal(ORIGIN, b"x")
    with pytest.raises(PrivacyError, match="keeps 1..256 epochs"):
        GroupKeyring(0, keep=257)
    with pytest.raises(PrivacyError, match="32 bytes"):
        GroupKey(0, 0, b"short")


def test_non_recipient_cannot_open(devices, ids):
    to_three = seal_to_device(devices[2], 3, ids[3].public_key, ORIGIN, SOIL_PLAIN)
    with pytest.raises(NotRecipient, match="sealed to member 3, not to member 1"):
        open_from_device(devices[1], 1, ids[2].public_key, ORIGIN, to_three)
    with pytest.raises(TamperedCiphertext):  # claiming to be member 3 does not give its key
        open_from_device(devices[1], 3, ids[2].public_key, ORIGIN, to_three)
    chains = keychains(devices, ids, (0, 1, 2))
    to_group = chains[2].keyring(0).seal(ORIGIN, SOIL_PLAIN)
    with pytest.raises(NotRecipient, match="sealed to group 0; member 3 holds no key of it"):
        chains[3].open(ids[2].public_key, ORIGIN, to_group)
    with pytest.raises(NotRecipient, match="sealed to member 3; this keyring is group 0's"):
        chains[0].keyring(0).open(ORIGIN, to_three)


def test_removed_member_cannot_open_after_rotation(devices, ids):
    chains = keychains(devices, ids, range(4), epoch=0)
    before_origin = TxOrigin(CHAIN_ID, 2, 999)
    before = chains[2].keyring(0).seal(before_origin, b"sent before the removal")
    # member 3 is removed; member 0 rotates to epoch 1 for members 0..2 in its tx 2
    origin = TxOrigin(CHAIN_ID, 0, 2)
    new_key, rotation = rotate_group_key(
        devices[0], origin, 0, 1, bytes([0xA5]) * 32, {m: ids[m].public_key for m in (0, 1, 2)}
    )
    raw = encode_rotation(rotation)
    assert len(raw) == 1 + 1 + 1 + 32 + 1 + 3 * (1 + 32)
    for m in (0, 1, 2):
        chains[m].accept(ids[0].public_key, origin, decode_rotation(raw))
        assert chains[m].keyring(0).current == new_key
    with pytest.raises(NotRecipient, match="member 3 is not among the recipients of group 0's key epoch 1"):
        chains[3].accept(ids[0].public_key, origin, decode_rotation(raw))
    stolen = KeyRotation(0, 1, rotation.commitment, (WrappedKey(3, rotation.wraps[2].wrapped),))
    with pytest.raises(TamperedCiphertext, match="does not match its commitment"):
        chains[3].accept(ids[0].public_key, origin, stolen)  # member 2's wrap is no use to 3

    after = chains[2].keyring(0).seal(ORIGIN, SOIL_PLAIN)
    assert chains[1].open(ids[2].public_key, ORIGIN, after) == SOIL_PLAIN
    with pytest.raises(WrongEpoch, match="epochs held here: 0 .a missed rotation, or no longer a member"):
        chains[3].open(ids[2].public_key, ORIGIN, after)
    for m in (1, 3):  # epoch 0 stays readable to whoever held it
        assert chains[m].open(ids[2].public_key, before_origin, before) == b"sent before the removal"


def test_rotation_from_a_different_rotator_or_tx_fails_its_commitment(devices, ids):
    origin = TxOrigin(CHAIN_ID, 0, 2)
    _, rotation = rotate_group_key(devices[0], origin, 0, 1, SECRET, {1: ids[1].public_key})
    for rotator, where in ((ids[2].public_key, origin), (ids[0].public_key, TxOrigin(CHAIN_ID, 0, 3))):
        with pytest.raises(TamperedCiphertext):
            open_rotation(devices[1], 1, rotator, where, rotation)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "malformed key rotation"),
        (b"\x01" + ROTATION_HEAD[1:] + b"\x00", "unsupported key rotation version 1"),
        (ROTATION_HEAD + b"\x00", "1..256 members, not 0"),
        (ROTATION_HEAD + b"\x02" + b"\x05" + bytes(32) + b"\x05" + bytes(32), "distinct, in increasing"),
        (ROTATION_HEAD + b"\x02" + b"\x05" + bytes(32) + b"\x04" + bytes(32), "distinct, in increasing"),
        (ROTATION_HEAD + b"\x01" + b"\x05" + bytes(31), "malformed key rotation"),
        (ROTATION_HEAD + b"\x01" + b"\x05" + bytes(33), "malformed key rotation"),
    ],
)
def test_malformed_rotation_raises_a_decode_error(raw, reason):
    with pytest.raises(PrivacyDecodeError, match=reason) as caught:
        decode_rotation(raw)
    assert isinstance(caught.value, DecodeError) and caught.value.user_facing


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "malformed sealed payload"),
        (b"\x00", "malformed sealed payload"),  # a group envelope without its epoch byte
        (b"\x00\x01" + bytes(15), "shorter than its 16-byte MAC"),
        (b"\x80", "malformed sealed payload"),
        (b"\xff" * 9 + b"\x7f" + bytes(16), "out of range"),
    ],
)
def test_malformed_envelope_raises_a_decode_error(raw, reason):
    with pytest.raises(PrivacyDecodeError, match=reason):
        decode_envelope(raw)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=120))
def test_decoders_of_random_bytes_give_an_object_or_a_decode_error(raw):
    for decode, encode_ in ((decode_envelope, encode_envelope), (decode_rotation, encode_rotation)):
        try:
            decoded = decode(raw)
        except PrivacyDecodeError:
            continue
        assert decode(encode_(decoded)) == decoded


def test_encode_misuse_is_a_privacy_encode_error_not_a_decode_error(devices, ids):
    with pytest.raises(PrivacyEncodeError, match="distinct") as caught:
        encode_rotation(KeyRotation(0, 1, bytes(32), (WrappedKey(1, bytes(32)), WrappedKey(1, bytes(32)))))
    assert not isinstance(caught.value, DecodeError)
    with pytest.raises(PrivacyEncodeError, match="cannot encode key rotation"):
        encode_rotation(KeyRotation(0, 1, bytes(31), (WrappedKey(1, bytes(32)),)))
    with pytest.raises(PrivacyError, match="1..256 members, not 0"):
        rotate_group_key(devices[0], ORIGIN, 0, 1, SECRET, {})
    with pytest.raises(PrivacyError, match="not a usable Ed25519 public key"):
        seal_to_device(devices[0], 1, bytes(32), ORIGIN, b"x")
    with pytest.raises(PrivacyError, match="tx nonce in 1..2"):
        TxOrigin(CHAIN_ID, 0, 0)


def test_error_tree():
    for error in (TamperedCiphertext, WrongEpoch, NotRecipient):
        assert issubclass(error, DecryptError) and issubclass(error, PrivacyError)
    assert issubclass(PrivacyError, ChainError) and issubclass(PrivacyDecodeError, DecodeError)
    assert issubclass(PrivacyEncodeError, PrivacyError) and issubclass(PrivacyEncodeError, EncodeError)


# --- nonces ------------------------------------------------------------------------------


def test_nonces_are_distinct_per_sender_tx_purpose_and_chain():
    nonces = {
        derive_nonce(TxOrigin(chain, sender, nonce), purpose)
        for chain in (CHAIN_ID, bytes(32))
        for sender in range(20)
        for nonce in range(1, 51)
        for purpose in Purpose
    }
    assert len(nonces) == 2 * 20 * 50 * len(Purpose)
    assert all(len(n) == 24 for n in nonces)


@given(origin=origins)
def test_nonce_is_the_same_on_every_node(origin):
    """Every node derives the nonce from the tx alone: same inputs, same 24 bytes."""
    copy = TxOrigin(bytes(origin.chain_id), origin.sender, origin.nonce)  # built apart, as another node would
    expected = hashlib.blake2b(
        struct.pack(">B32sQQ", Purpose.GROUP, origin.chain_id, origin.sender, origin.nonce),
        digest_size=24, person=b"BlockIoT nonce",
    ).digest()
    assert derive_nonce(copy, Purpose.GROUP) == derive_nonce(origin, Purpose.GROUP) == expected


# --- known-answer vectors (fixed seeds; pinned: a change here changes the protocol) -------------


def test_x25519_keys_follow_the_birational_map(ids, devices):
    """u = (1 + y) / (1 - y) mod 2^255 - 19 (RFC 7748 section 4.1), computed independently."""
    p = 2**255 - 19
    y = int.from_bytes(ids[0].public_key, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, -1, p) % p
    assert x25519_public_key(ids[0].public_key) == u.to_bytes(32, "little") == devices[0].public_key
    assert devices[0].public_key.hex() == "1b1b58dd50ea14b60da17b790cd02754d970c9bab864ebb3c0f3016fe51d3f57"


def test_known_answer_vectors(devices, ids):
    nonce = derive_nonce(ORIGIN, Purpose.GROUP)
    assert nonce.hex() == "031207f8696517993c64e48528f6f4949dea6c9b822f2847"
    assert SOIL_PLAIN.hex() == "0101be04"  # READING, sensor 1, zigzag(287) = 574 as a varint
    assert encode_sealable(SOIL) == SOIL_PLAIN  # what a SEALED tx hides

    key = GroupKey(0, 7, SECRET)
    assert key.commitment().hex() == "6392f09e223b3009818887cd2bb47136ecfdcb2fbb650d0a18d3a50d2033ccad"
    group_epoch = struct.pack(">QQ", 0, 7)
    assert key.commitment() == hashlib.blake2b(group_epoch, key=SECRET, digest_size=32, person=b"BlockIoT keycmt").digest()
    ring = GroupKeyring(0)
    ring.add(key)
    group_sealed = ring.seal(ORIGIN, SOIL_PLAIN)
    assert group_sealed.hex() == "00075d90c7244359b5930efd913573cae7b0e04eefa3"
    assert group_sealed[2:] == SecretBox(SECRET).encrypt(SOIL_PLAIN, nonce).ciphertext

    device_sealed = seal_to_device(devices[2], 3, ids[3].public_key, ORIGIN, SOIL_PLAIN)
    assert device_sealed.hex() == "077f07c45c6073f9ca63fd0a225a15e568ae048ea0"  # to = 2 * 3 + 1
    box = Box(PrivateKey(_x25519_private(ids[2].seed)), PublicKey(devices[3].public_key))
    assert device_sealed[1:] == box.encrypt(SOIL_PLAIN, derive_nonce(ORIGIN, Purpose.DEVICE)).ciphertext

    origin = TxOrigin(CHAIN_ID, 0, 5)
    _, rotation = rotate_group_key(devices[0], origin, 0, 8, SECRET, {m: ids[m].public_key for m in (0, 1, 2)})
    assert encode_rotation(rotation).hex() == (
        "000008" + "f2abe46d8e2ba6e86888fb5e9651525e50af901ec53d45c1a4a36bde219d1eeb"
        + "03"
        + "00" + "19cc73e87546423b43b354e5b6f9705478e19e03a8667ec3a604290b7e85d455"
        + "01" + "8e9db3bcfc06c5e88fc68687c1d405909758c7e00cd0d5748408506488046e2f"
        + "02" + "4152b8da5440686540779c0134177154f5c3239cd2e398312cba09a085d905e8"
    )


def _x25519_private(seed: bytes) -> bytes:
    """RFC 8032 section 5.1.5: the X25519 scalar is the first half of SHA-512(seed), clamped
    (PyNaCl's `to_curve25519_private_key`, re-derived here independently)."""
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] = (h[31] & 127) | 64
    return bytes(h)


# --- secrets never in a repr -------------------------------------------------------------


def test_reprs_redact_key_material(devices, ids):
    chains = keychains(devices, ids, range(4), secret=SECRET)
    key = chains[1].keyring(0).current
    private = _x25519_private(SEEDS[1])
    texts = [repr(key), str(key), f"{key}", repr(devices[1]), repr(chains[1]), repr(chains[1].keyring(0))]
    for text in texts:
        for secret in (SECRET, private, SEEDS[1]):
            assert secret.hex() not in text and secret.hex().upper() not in text and repr(secret) not in text
    assert repr(key) == "GroupKey(group=0, epoch=0, secret=<redacted>)"
    assert "private=<redacted>" in repr(devices[1])


# --- size on air ------------------------------------------------------------------------


@pytest.mark.parametrize("sender, nonce, expected", [(2, 1000, 93), (2, 100, 92), (200, 50_000, 95)])
def test_encrypted_soil_reading_on_air_fits_96_bytes(devices, ids, sender, nonce, expected):
    """A moisture reading sealed to the cluster, carried in a signed SEALED tx, in one link frame."""
    chains = keychains(devices, ids, range(4))
    sealed = chains[2].keyring(0).seal(TxOrigin(CHAIN_ID, sender, nonce), SOIL_PLAIN)
    tx = sign_tx(ids[2], CHAIN_ID, sender, nonce, Sealed(sealed))
    on_air = encode(SingleFrame(1, tx.raw))
    breakdown = {
        "link header": SINGLE_HEADER_LEN,
        "kind/version": 1,
        "sender": _varint_len(sender),
        "nonce": _varint_len(nonce),
        "length": 1,
        "to": 1,
        "epoch": 1,
        "MAC": MAC_LEN,
        "sealed reading": len(SOIL_PLAIN),
        "signature": SIGNATURE_LEN,
    }
    assert len(on_air) == sum(breakdown.values()) == expected <= 96
    plain = sign_tx(ids[2], CHAIN_ID, sender, nonce, SOIL)  # the same reading in clear
    extra = len(on_air) - len(encode(SingleFrame(1, plain.raw)))
    assert extra == 1 + 1 + 1 + MAC_LEN + 1 == 20  # length, to, epoch, MAC, inner kind


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)
