"""Error types of the chain layer: every decode of untrusted bytes, every encode of our
own objects and every rejected transaction or block raises one of these, never a bare
construct/nacl/sqlite error. The root of the tree is the project's `BlockIoTError`
(blockiot.radio.errors); construct errors become `DecodeError` / `EncodeError` at one
boundary (blockiot.radio.codec)."""
from __future__ import annotations

from blockiot.radio.errors import BlockIoTError


class ChainError(BlockIoTError):
    """Base of all chain errors; the message is meant for the person reading it."""


class DecodeError(ChainError):
    """Bytes from outside (a peer, a file) that are not a well-formed encoding (truncated,
    trailing bytes, bad CRC, unknown version or kind, out-of-range field, oversize after
    decompression): the sender's fault."""


class EncodeError(ChainError):
    """One of our own objects that cannot be encoded (a field out of range, too many
    transactions, a body that does not fit its kind): our own misuse, never a peer's."""


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
