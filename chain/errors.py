"""Error types of the chain layer: every decode of untrusted bytes and every rejected
transaction or block raises one of these, never a bare construct/nacl/sqlite error."""
from __future__ import annotations


class ChainError(Exception):
    """Base of all chain errors; the message is meant for the person reading it."""

    user_facing = True


class DecodeError(ChainError):
    """Bytes that are not a well-formed encoding (truncated, trailing bytes, bad CRC,
    unknown version or kind, out-of-range field, oversize after decompression)."""


class InvalidTx(ChainError):
    """A well-formed transaction that must not be applied (bad signature, unknown sender,
    replayed or skipped nonce, unknown device)."""


class InvalidBlock(ChainError):
    """A well-formed block that must not be applied (wrong parent, height or leader,
    bad signature, an invalid transaction inside)."""


class KeyFileError(ChainError):
    """A key file that is missing, malformed or readable by others."""


class GenesisError(ChainError):
    """A genesis description (TOML or encoded) that is incomplete or inconsistent."""


class StoreError(ChainError):
    """The on-disk chain store cannot be opened, written or is inconsistent."""
