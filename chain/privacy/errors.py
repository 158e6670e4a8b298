"""Errors of the privacy layer, inside the chain error tree.

A sealed payload that a node cannot open raises a `DecryptError` subclass naming why;
malformed sealed bytes raise `PrivacyDecodeError` (also a chain `DecodeError`), a rotation
or envelope of our own that cannot be encoded `PrivacyEncodeError` (also a chain
`EncodeError`); callers never see a construct or nacl exception.
"""
from __future__ import annotations

from ..errors import ChainError, DecodeError, EncodeError


class PrivacyError(ChainError):
    """Misuse of the privacy layer (a key of the wrong length or group, an unusable public
    key, sealing with no key held, an encode of an out-of-range field)."""


class PrivacyDecodeError(PrivacyError, DecodeError):
    """Sealed bytes or a key rotation that are not a well-formed encoding."""


class PrivacyEncodeError(PrivacyError, EncodeError):
    """A sealed payload's addressing or a key rotation of our own with a field out of range."""


class DecryptError(PrivacyError):
    """A well-formed sealed payload that this node cannot open; nothing from it applies.
    Each subclass names why in `reason`, a stable code for events and counters."""

    reason: str


class TamperedCiphertext(DecryptError):
    """Authentication failed: the bytes were altered, or sealed under another key."""

    reason = "tampered"


class WrongEpoch(DecryptError):
    """Sealed under a group key epoch this node does not hold (missed a rotation, was
    removed from the group, or the epoch has aged out of its keyring)."""

    reason = "wrong-epoch"


class NotRecipient(DecryptError):
    """Sealed to another device or group, or a key rotation that leaves this node out."""

    reason = "not-recipient"

