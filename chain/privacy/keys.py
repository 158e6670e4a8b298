"""Key material and derived nonces: a device's X25519 key from its Ed25519 identity, a
group key of one epoch, and the transaction a sealed payload travels in (`TxOrigin`).

Nothing random is reached for here: a group key's 32 secret bytes are passed in. Key
types redact their secret in `repr`, so a key in a log line or an event shows no secret.
"""
from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519
from nacl.exceptions import CryptoError
from nacl.public import Box, PublicKey
from nacl.signing import SigningKey

from ..crypto import HASH_LEN, PUBLIC_KEY_LEN, Identity
from .errors import PrivacyError

KEY_LEN = 32  # a group key, the SecretBox key size
NONCE_LEN = 24  # XSalsa20
MAC_LEN = 16  # Poly1305
COMMITMENT_LEN = 32
MAX_INDEX = 2**62 - 1  # recipient, group and epoch numbers (a sealed envelope packs one bit more)
MAX_VARINT = 2**63 - 1  # a tx's sender and nonce, as chain/wire.py bounds them


class Purpose(enum.IntEnum):
    """Domain tag of a derived nonce or pad: one tx may carry at most one use of each."""

    DEVICE = 1  # a payload sealed to one device (Box)
    GROUP = 2  # a payload sealed to a group (SecretBox)
    KEY_WRAP = 3  # a rotated group key wrapped to each recipient


@dataclass(frozen=True)
class TxOrigin:
    """The signed transaction that carries a sealed payload. Its (chain id, sender, tx
    nonce) never repeat, so nonces derived from them never repeat under one key and are
    never sent: each receiver derives them from the transaction it received."""

    chain_id: bytes
    sender: int
    nonce: int

    def __post_init__(self):
        if len(self.chain_id) != HASH_LEN:
            raise PrivacyError(f"a chain id is {HASH_LEN} bytes, got {len(self.chain_id)}")
        if not (0 <= self.sender <= MAX_VARINT and 0 < self.nonce <= MAX_VARINT):
            raise PrivacyError("sender must be in 0..2^63-1 and tx nonce in 1..2^63-1")

    def context(self, purpose: Purpose) -> bytes:
        """Fixed-width input of every derivation: purpose, chain id, sender, tx nonce."""
        return struct.pack(">B32sQQ", purpose, self.chain_id, self.sender, self.nonce)


def derive_nonce(origin: TxOrigin, purpose: Purpose) -> bytes:
    """The 24-byte XSalsa20 nonce of one sealed payload: BLAKE2b-192 of its origin."""
    return hashlib.blake2b(origin.context(purpose), digest_size=NONCE_LEN, person=b"BlockIoT nonce").digest()


def x25519_public_key(ed25519_public_key: bytes) -> bytes:
    """A member's X25519 public key, derived from the Ed25519 key in the registry."""
    if len(ed25519_public_key) != PUBLIC_KEY_LEN:
        raise PrivacyError(f"an Ed25519 public key is {PUBLIC_KEY_LEN} bytes, got {len(ed25519_public_key)}")
    try:
        return crypto_sign_ed25519_pk_to_curve25519(bytes(ed25519_public_key))
    except CryptoError:
        raise PrivacyError(f"{ed25519_public_key.hex()} is not a usable Ed25519 public key") from None


class DeviceKey:
    """A device's X25519 key pair, derived from its Ed25519 identity: no second key is
    generated, stored or registered."""

    __slots__ = ("_private", "public_key")

    def __init__(self, identity: Identity):
        self._private = SigningKey(identity.seed).to_curve25519_private_key()
        self.public_key: bytes = bytes(self._private.public_key)

    def box(self, peer_ed25519_public_key: bytes) -> Box:
        """The Box between this device and a peer (symmetric: either side derives it)."""
        try:
            return Box(self._private, PublicKey(x25519_public_key(peer_ed25519_public_key)))
        except CryptoError:  # a low-order point: X25519 would give the all-zero secret
            raise PrivacyError(
                f"no shared key with {peer_ed25519_public_key.hex()}: a degenerate public key"
            ) from None

    def __repr__(self) -> str:
        return f"DeviceKey(public_key={self.public_key.hex()}, private=<redacted>)"


@dataclass(frozen=True, repr=False)
class GroupKey:
    """The key of one group (0: the whole cluster) in one epoch."""

    group: int
    epoch: int
    secret: bytes

    def __post_init__(self):
        if len(self.secret) != KEY_LEN:
            raise PrivacyError(f"a group key is {KEY_LEN} bytes, got {len(self.secret)}")
        if not (0 <= self.group <= MAX_INDEX and 0 <= self.epoch <= MAX_INDEX):
            raise PrivacyError("group and epoch must be in 0..2^62-1")

    @property
    def tag(self) -> int:
        """The epoch as sent on air: one byte, the epoch mod 256."""
        return self.epoch % 256

    def commitment(self) -> bytes:
        """32 bytes that bind this key to (group, epoch) without revealing it: every
        recipient of a rotation checks its unwrapped key against the one on chain."""
        return hashlib.blake2b(
            struct.pack(">QQ", self.group, self.epoch), key=self.secret,
            digest_size=COMMITMENT_LEN, person=b"BlockIoT keycmt",
        ).digest()

    def __repr__(self) -> str:
        return f"GroupKey(group={self.group}, epoch={self.epoch}, secret=<redacted>)"
