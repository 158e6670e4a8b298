"""Sealed payloads: to one device (Box) or to a group (SecretBox), and a group's keyring.

Envelope (one construct declaration, `_ENVELOPE`)::

    to     varint   even: a group, to = 2 * group (0 is the whole cluster)
                    odd:  one device, to = 2 * recipient's registry index + 1
    epoch  u8       groups only: the key epoch mod 256
    box    rest     XSalsa20-Poly1305: 16-byte MAC, then the ciphertext (plaintext length)

The nonce derives from the carrying transaction (`TxOrigin`) and is not sent, so a
sealed payload costs the 16-byte MAC, the epoch byte for a group, and the `to` varint
(1 byte for groups < 64 and members < 64). Validators read `to` and the epoch without
any key (`decode_envelope`), so a payload to a non-member can be refused on chain.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from construct import GreedyBytes, If, Int8ub, Struct, VarInt, this
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from blockiot.radio.codec import decoding, encoding

from .errors import NotRecipient, PrivacyDecodeError, PrivacyEncodeError, PrivacyError, TamperedCiphertext, WrongEpoch
from .keys import MAC_LEN, MAX_INDEX, DeviceKey, GroupKey, Purpose, TxOrigin, derive_nonce

EPOCH_TAGS = 256  # the epoch travels mod 256, so a keyring holds at most 256 epochs
DEFAULT_KEEP = 4


class Scope(enum.IntEnum):
    GROUP = 0
    DEVICE = 1


@dataclass(frozen=True)
class Envelope:
    scope: Scope
    target: int  # the group, or the recipient's registry index
    epoch_tag: int | None  # groups only: key epoch mod 256
    box: bytes  # MAC + ciphertext


_ENVELOPE = Struct(
    "to" / VarInt,
    "epoch" / If(this.to % 2 == Scope.GROUP, Int8ub),
    "box" / GreedyBytes,
)


def encode_envelope(envelope: Envelope) -> bytes:
    if not 0 <= envelope.target <= MAX_INDEX:
        raise PrivacyEncodeError(f"sealed payload target {envelope.target} out of range")
    to = 2 * envelope.target + envelope.scope
    with encoding("sealed payload", PrivacyEncodeError):
        return _ENVELOPE.build(dict(to=to, epoch=envelope.epoch_tag, box=envelope.box))


def decode_envelope(raw: bytes) -> Envelope:
    """The addressing of sealed bytes, readable without a key; `PrivacyDecodeError` if malformed."""
    with decoding("sealed payload", PrivacyDecodeError):
        c = _ENVELOPE.parse(bytes(raw))
    if c.to > 2 * MAX_INDEX + 1:
        raise PrivacyDecodeError(f"sealed payload target {c.to // 2} out of range")
    if len(c.box) < MAC_LEN:
        raise PrivacyDecodeError(f"sealed payload of {len(c.box)} B is shorter than its {MAC_LEN}-byte MAC")
    return Envelope(Scope(c.to % 2), c.to // 2, c.epoch, c.box)


def seal_to_device(
    key: DeviceKey, recipient: int, recipient_public_key: bytes, origin: TxOrigin, plaintext: bytes
) -> bytes:
    """Seal `plaintext` from the device of `key` (the sender of `origin`) to one member,
    given its registry index and Ed25519 public key."""
    box = key.box(recipient_public_key).encrypt(plaintext, derive_nonce(origin, Purpose.DEVICE)).ciphertext
    return encode_envelope(Envelope(Scope.DEVICE, recipient, None, box))


def open_from_device(key: DeviceKey, me: int, sender_public_key: bytes, origin: TxOrigin, sealed: bytes) -> bytes:
    """The plaintext sealed to member `me` (holder of `key`) by the sender of `origin`."""
    env = decode_envelope(sealed)
    if env.scope is not Scope.DEVICE or env.target != me:
        raise NotRecipient(f"sealed to {_describe(env)}, not to member {me}")
    try:
        return key.box(sender_public_key).decrypt(env.box, derive_nonce(origin, Purpose.DEVICE))
    except CryptoError:
        raise TamperedCiphertext(f"{_describe_origin(origin)} to member {me} {_TAMPERED}") from None


class GroupKeyring:
    """The keys this node holds for one group, by epoch: the newest `keep` epochs (older
    ones are dropped, so payloads sealed under them can no longer be opened here)."""

    def __init__(self, group: int, keep: int = DEFAULT_KEEP):
        if not 1 <= keep <= EPOCH_TAGS:
            raise PrivacyError(f"a keyring keeps 1..{EPOCH_TAGS} epochs, not {keep}")
        self.group = group
        self.keep = keep
        self._by_tag: dict[int, GroupKey] = {}

    def __repr__(self) -> str:
        return f"GroupKeyring(group={self.group}, epochs={list(self.epochs)})"

    @property
    def epochs(self) -> tuple[int, ...]:
        return tuple(sorted(k.epoch for k in self._by_tag.values()))

    @property
    def current(self) -> GroupKey | None:
        """The newest key held, the one `seal` uses."""
        return max(self._by_tag.values(), key=lambda k: k.epoch, default=None)

    def add(self, key: GroupKey) -> None:
        """Hold `key`; a key older than the newest `keep` epochs is not kept."""
        if key.group != self.group:
            raise PrivacyError(f"a key of group {key.group} does not belong in group {self.group}'s keyring")
        held = self._by_tag.get(key.tag)
        if held is not None and held.epoch == key.epoch and held != key:
            raise PrivacyError(f"a different key for group {self.group} epoch {key.epoch} is already held")
        if held is None or held.epoch < key.epoch:
            self._by_tag[key.tag] = key
        for old in sorted(self._by_tag.values(), key=lambda k: k.epoch)[: -self.keep]:
            del self._by_tag[old.tag]

    def seal(self, origin: TxOrigin, plaintext: bytes) -> bytes:
        """Seal `plaintext` under the current epoch's key."""
        key = self.current
        if key is None:
            raise PrivacyError(f"no key held for group {self.group}: cannot seal to it")
        box = SecretBox(key.secret).encrypt(plaintext, derive_nonce(origin, Purpose.GROUP)).ciphertext
        return encode_envelope(Envelope(Scope.GROUP, self.group, key.tag, box))

    def open(self, origin: TxOrigin, sealed: bytes) -> bytes:
        env = decode_envelope(sealed)
        if env.scope is not Scope.GROUP or env.target != self.group:
            raise NotRecipient(f"sealed to {_describe(env)}; this keyring is group {self.group}'s")
        key = self._by_tag.get(env.epoch_tag)
        if key is None:
            held = ", ".join(map(str, self.epochs)) or "none"
            raise WrongEpoch(
                f"{_describe_origin(origin)} is sealed under key epoch {env.epoch_tag} (mod 256) of group "
                f"{self.group}; epochs held here: {held} (a missed rotation, or no longer a member)"
            )
        try:
            return SecretBox(key.secret).decrypt(env.box, derive_nonce(origin, Purpose.GROUP))
        except CryptoError:
            raise TamperedCiphertext(
                f"{_describe_origin(origin)} to group {self.group} epoch {key.epoch} {_TAMPERED}"
            ) from None


_TAMPERED = "fails authentication: altered, or sealed under another key"


def _describe(env: Envelope) -> str:
    return f"group {env.target}" if env.scope is Scope.GROUP else f"member {env.target}"


def _describe_origin(origin: TxOrigin) -> str:
    return f"member {origin.sender}'s payload in its tx {origin.nonce}"
