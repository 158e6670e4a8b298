"""Group key rotation: a new key (epoch + 1) wrapped to each remaining member, compactly.

When a group's membership changes, one member (the rotator) draws 32 fresh random bytes
(passed in, never reached for here) and publishes, in one signed transaction::

    version     u8       0
    group       varint   0 is the whole cluster
    epoch       varint   the new epoch, in full
    commitment  32 B     BLAKE2b-256 keyed by the new key over (group, epoch)
    wraps       varint count, then per recipient, registry indexes strictly increasing:
      member    varint   the recipient's registry index
      wrapped   32 B     new key XOR BLAKE2b-256 keyed by the rotator-member Box key
                         (X25519 + HSalsa20) over (KEY_WRAP, chain id, rotator, tx nonce)

33 bytes per recipient (index < 128) and 36 once: no per-recipient ephemeral key or MAC.
The pads never repeat (one per Box key and tx); the transaction's signature
authenticates every byte, and the commitment lets each recipient check that its
unwrapped key is the one every other recipient unwraps. A member left out of `wraps`
(a removed one) never learns the key, so it cannot open anything sealed under it.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from construct import Bytes, Int8ub, PrefixedArray, Struct, Terminated, VarInt

from blockiot.radio.codec import decoding, encoding

from .errors import NotRecipient, PrivacyDecodeError, PrivacyEncodeError, PrivacyError, TamperedCiphertext
from .keys import COMMITMENT_LEN, KEY_LEN, MAX_INDEX, DeviceKey, GroupKey, Purpose, TxOrigin

ROTATION_VERSION = 0
MAX_RECIPIENTS = 256


@dataclass(frozen=True)
class WrappedKey:
    member: int
    wrapped: bytes


@dataclass(frozen=True)
class KeyRotation:
    group: int
    epoch: int
    commitment: bytes
    wraps: tuple[WrappedKey, ...]

    @property
    def recipients(self) -> tuple[int, ...]:
        return tuple(w.member for w in self.wraps)


_ROTATION = Struct(
    "version" / Int8ub,
    "group" / VarInt,
    "epoch" / VarInt,
    "commitment" / Bytes(COMMITMENT_LEN),
    "wraps" / PrefixedArray(VarInt, Struct("member" / VarInt, "wrapped" / Bytes(KEY_LEN))),
    Terminated,
)


def rotate_group_key(
    rotator: DeviceKey, origin: TxOrigin, group: int, epoch: int, secret: bytes,
    recipients: Mapping[int, bytes],
) -> tuple[GroupKey, KeyRotation]:
    """The new key of `group` at `epoch` (the 32 random bytes `secret`) and its rotation,
    wrapped to `recipients` (registry index -> Ed25519 public key; include the rotator to
    let it recover the key from the chain alone). `origin` is the carrying transaction."""
    key = GroupKey(group, epoch, secret)
    wraps = tuple(
        WrappedKey(member, _xor(secret, _pad(rotator, public_key, origin)))
        for member, public_key in sorted(recipients.items())
    )
    rotation = KeyRotation(group, epoch, key.commitment(), wraps)
    _check(rotation, PrivacyError)
    return key, rotation


def open_rotation(
    key: DeviceKey, me: int, rotator_public_key: bytes, origin: TxOrigin, rotation: KeyRotation
) -> GroupKey:
    """The group key that `rotation` (carried by `origin`, signed by the rotator) wraps to
    member `me`, the holder of `key`."""
    wrap = next((w for w in rotation.wraps if w.member == me), None)
    if wrap is None:
        raise NotRecipient(
            f"member {me} is not among the recipients of group {rotation.group}'s key epoch {rotation.epoch}"
        )
    group_key = GroupKey(rotation.group, rotation.epoch, _xor(wrap.wrapped, _pad(key, rotator_public_key, origin)))
    if not hmac.compare_digest(group_key.commitment(), rotation.commitment):
        raise TamperedCiphertext(
            f"the key of group {rotation.group} epoch {rotation.epoch} wrapped to member {me} does not match "
            f"its commitment: altered, or wrapped by another rotator or in another tx"
        )
    return group_key


def encode_rotation(rotation: KeyRotation) -> bytes:
    _check(rotation, PrivacyEncodeError)
    value = dict(
        version=ROTATION_VERSION, group=rotation.group, epoch=rotation.epoch, commitment=rotation.commitment,
        wraps=[dict(member=w.member, wrapped=w.wrapped) for w in rotation.wraps],
    )
    with encoding("key rotation", PrivacyEncodeError):
        return _ROTATION.build(value)


def decode_rotation(raw: bytes) -> KeyRotation:
    """A fully checked rotation, or `PrivacyDecodeError`."""
    with decoding("key rotation", PrivacyDecodeError):
        c = _ROTATION.parse(bytes(raw))
    if c.version != ROTATION_VERSION:
        raise PrivacyDecodeError(f"unsupported key rotation version {c.version}")
    wraps = tuple(WrappedKey(w.member, w.wrapped) for w in c.wraps)
    rotation = KeyRotation(c.group, c.epoch, c.commitment, wraps)
    _check(rotation, PrivacyDecodeError)
    return rotation


def _check(rotation: KeyRotation, error: type[PrivacyError]) -> None:
    members = rotation.recipients
    if not 0 < len(members) <= MAX_RECIPIENTS:
        raise error(f"a key rotation wraps the key to 1..{MAX_RECIPIENTS} members, not {len(members)}")
    if any(b <= a for a, b in zip(members, members[1:])):
        raise error("key rotation recipients must be distinct, in increasing registry order")
    if not (0 <= rotation.group <= MAX_INDEX and 0 <= rotation.epoch <= MAX_INDEX and members[-1] <= MAX_INDEX):
        raise error("key rotation group, epoch or recipient out of range")


def _pad(key: DeviceKey, peer_public_key: bytes, origin: TxOrigin) -> bytes:
    shared = key.box(peer_public_key).shared_key()
    return hashlib.blake2b(
        origin.context(Purpose.KEY_WRAP), key=shared, digest_size=KEY_LEN, person=b"BlockIoT keywrap"
    ).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))
